import pytest

from simulator import clock, services


@pytest.fixture
def sim_clock(db):
    clock.reset()
    yield clock
    clock.reset()


@pytest.fixture
def sim_app(db, sim_clock):
    """(app, secrets) of a fresh simulated HM application with approval after 5 s."""
    return services.create_app("Test fleet app", approval_delay_seconds=5)
