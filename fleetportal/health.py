"""Reachability checks for /healthz."""

import os
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection


def check_database() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "unreachable" to a health check
        return False, type(exc).__name__
    return True, "ok"


def check_cache() -> tuple[bool, str]:
    """The shared cache (Redis in production): tokens, locks, debounces. Its loss slows work
    down (each process fetches its own HM token) but stops nothing, so it never makes /healthz
    fail on its own: it is reported, as "degraded"."""
    try:
        cache.set("healthz:probe", 1, timeout=5)
        cache.get("healthz:probe")
    except Exception as exc:
        return False, type(exc).__name__
    return True, "ok"


def check_broker(timeout: float = 2.0) -> tuple[bool, str]:
    url: str = settings.CELERY_BROKER_URL
    options: dict[str, Any] = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    if url.startswith("filesystem"):
        folder = Path(options["data_folder_in"])
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            return False, "broker folder missing or not writable"
        return True, "ok (filesystem)"
    started = time.monotonic()
    try:
        # A fresh connection each time: a pooled one could report a broker that has since gone.
        with Connection(url, transport_options=options, connect_timeout=timeout) as conn:
            # kombu takes the timeout in seconds as a float (its stubs say int).
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)  # type: ignore[arg-type]
            conn.default_channel  # noqa: B018  (Redis connects lazily; this really talks to it)
    except Exception as exc:
        return False, type(exc).__name__
    return True, f"ok ({(time.monotonic() - started) * 1000:.0f} ms)"
