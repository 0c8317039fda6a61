"""A real ``celery worker`` process on the current database and the configured broker."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from fleetportal.celery import app
from tests.support.db import database_url

ROOT = Path(__file__).resolve().parent.parent.parent


def purge_broker() -> None:
    """Drop every message waiting in the worker queues (a filesystem broker: its folder)."""
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return
    with app.connection_for_write() as conn:
        for queue in settings.CELERY_WORKER_QUEUES:
            # A queue that was never declared has nothing to purge.
            with contextlib.suppress(Exception):
                conn.default_channel.queue_purge(queue)


def worker_mail_folder() -> Path:
    """Where the test worker's email backend writes every message it sends."""
    return settings.VAR_DIR / f"test-mail-{os.getpid()}"


def worker_environment(**extra: str) -> dict[str, str]:
    """The environment of a worker that shares this process's database and broker."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fleetportal.settings_test",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": ""
        if settings.CELERY_BROKER_URL.startswith("filesystem")
        else settings.CELERY_BROKER_URL,
        **extra,
    }


def start_worker(
    *,
    log_path: Path | None = None,
    loglevel: str = "INFO",
    concurrency: int = 4,
    pool: str = "threads",
    **env: str,
) -> subprocess.Popen:
    """Start a worker on every queue (threads pool unless ``pool`` says otherwise: the Procfile's
    workers are prefork); its output goes to ``log_path``."""
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "fleetportal",
        "worker",
        "-Q",
        ",".join(settings.CELERY_WORKER_QUEUES),
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if log_path is None:
        return subprocess.Popen(cmd, cwd=ROOT, env=worker_environment(**env))
    with log_path.open("w") as log:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=worker_environment(**env), stdout=log, stderr=subprocess.STDOUT
        )


def wait_until_ready(process: subprocess.Popen, log_path: Path, *, timeout: float = 60) -> bool:
    """True once the worker says "ready."; False if it died or did not get there in time."""
    deadline = time.monotonic() + timeout
    while "ready." not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True
