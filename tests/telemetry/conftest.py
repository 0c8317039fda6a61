import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _no_beat_lock():
    """The beat job's overlap lock lives in the cache; every test starts without it.

    Refresh statuses are keyed by the vehicle's public id, so they never leak between tests (and
    the cache, shared with other test runs when it is the file cache, is not cleared).
    """
    cache.delete("telemetry:pull-approved:lock")
    yield
    cache.delete("telemetry:pull-approved:lock")
