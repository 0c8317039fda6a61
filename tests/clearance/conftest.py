"""Lifecycle test settings: small backoffs so fault tests finish in seconds.

Set in the environment at import (collection) time, before the session's Celery worker starts,
so the worker process uses them too.
"""

import os

os.environ.setdefault("HM_RETRY_BACKOFF_SECONDS", "0.2")
os.environ.setdefault("HM_RETRY_BACKOFF_MAX_SECONDS", "1.5")
os.environ.setdefault("HM_MAX_RETRIES", "40")
os.environ.setdefault("DURABLE_RETRY_BASE_SECONDS", "0.2")
os.environ.setdefault("DURABLE_RETRY_MAX_SECONDS", "1.5")


import pytest

from clearance.work import BackgroundTask
from simulator import clock as sim_clock


@pytest.fixture
def queued_tasks(monkeypatch):
    """Record the tasks services would queue after commit instead of sending them."""
    calls = []

    def record(task, *args, on_error=None):
        from django.db import transaction

        transaction.on_commit(lambda: calls.append((task.name.rsplit(".", 1)[-1], *args)))

    def record_async(task, args=(), kwargs=None, *, on_error=None, **options):
        from django.db import transaction

        transaction.on_commit(lambda: calls.append((task.name.rsplit(".", 1)[-1], *args)))

    monkeypatch.setattr(BackgroundTask, "delay_on_commit", record)
    monkeypatch.setattr(BackgroundTask, "apply_async_on_commit", record_async)
    return calls


@pytest.fixture
def simulator(live_server, transactional_db, settings, queued_tasks):
    settings.HM_SIMULATOR_BASE_URL = f"{live_server.url}/simulator"
    settings.SITE_URL = live_server.url
    sim_clock.reset()
    yield
    sim_clock.reset()
