"""End to end with a real Celery worker process: the worker shares the simulator's clock."""

import json
from datetime import timedelta

import pytest

from simulator import services, tasks
from tests.conftest import wait_for
from tests.simulator.test_simulator_webhooks import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_worker_delivers_ping_and_time_driven_webhooks(
    transactional_db, celery_worker, receiver, sim_clock
):
    app, _ = services.create_app(
        "Worker app", webhook_url=receiver.url, webhook_secret="k", approval_delay_seconds=5
    )
    wait_for(
        lambda: any(h["X-HM-Event"] == "ping" for h, _ in receiver.requests), message="ping webhook"
    )

    services.request_clearances(app, [{"vin": "WBADT43452G296403", "brand": "bmw"}])
    sim_clock.advance(timedelta(seconds=10))  # stored in the database: the worker sees it too
    tasks.tick.delay()

    def approved():
        return [
            json.loads(body)["event"]["action"]
            for headers, body in receiver.requests
            if headers["X-HM-Event"] == "fleet_clearance_changed"
        ]

    wait_for(lambda: "approved" in approved(), message="approved webhook from the worker")
    assert approved() == ["pending", "approved"]
