"""Pull over real HTTP: our HM client (clearance.clients) against the simulator on a live server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from simulator import clock
from simulator import services as sim
from telemetry import pull
from telemetry.models import TelemetrySnapshot
from tests.factories import ClearanceFactory
from tests.support.simulator import simulator_credential

VIN = "2HM00000000000004"


@pytest.fixture
def simulated(transactional_db, live_server, settings, organization):
    settings.HM_SIMULATOR_BASE_URL = f"{live_server.url}/simulator"
    clock.reset()
    credential, app, secrets = simulator_credential(organization, "Telemetry test app")
    credential.app_id = secrets.app_id
    credential.save(update_fields=["app_id"])
    clearance = ClearanceFactory(
        vehicle__organization=organization,
        vehicle__vin=VIN,
        credential=credential,
        status="approved",
    )
    yield app, clearance
    clock.reset()


def test_pull_stores_the_simulators_moving_vehicle(simulated):
    app, clearance = simulated
    sim.request_clearances(app, [{"vin": VIN, "brand": "sandbox"}])
    clock.advance(timedelta(seconds=30))  # approved after 5 s
    first = pull.pull_vehicle(clearance.vehicle_id)
    assert first.ok, first.message
    # Twenty minutes later for everyone (our clock and the simulator's).
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=20), tick=True):
        second = pull.pull_vehicle(clearance.vehicle_id)
    assert second.ok, second.message
    a, b = TelemetrySnapshot.objects.filter(vehicle=clearance.vehicle).order_by("captured_at")
    gap = b.captured_at - a.captured_at  # HM's (simulated) timestamps, not our receive times
    assert timedelta(minutes=19) < gap < timedelta(minutes=21)
    assert a.odometer_km is not None and b.odometer_km >= a.odometer_km
    assert a.latitude is not None and a.fields_meta["odometer_km"]["timestamp"]


def test_pull_without_consent_is_explained(simulated):
    _app, clearance = simulated  # never requested at the simulator: HM answers 403
    outcome = pull.pull_vehicle(clearance.vehicle_id)
    assert not outcome.ok
    assert "no active consent" in outcome.message.lower()
    assert not TelemetrySnapshot.objects.exists()


def test_the_reconciler_wakes_a_real_worker_that_pulls_every_due_vehicle(simulated, celery_worker):
    from django.utils import timezone

    from durable import work
    from telemetry import tasks
    from telemetry.models import TelemetryPull
    from tests.conftest import wait_for

    app, clearance = simulated
    sim.request_clearances(app, [{"vin": VIN, "brand": "sandbox"}])
    clock.advance(timedelta(seconds=30))  # approved after 5 s
    assert tasks.pull_approved_vehicles.run() == (1, 0)  # beat: the vehicle is scheduled
    TelemetryPull.objects.update(next_attempt_at=timezone.now())  # and due now
    assert work.reconcile()["telemetry.pulls"] >= 1  # a lane message, through the broker
    row = wait_for(
        lambda: TelemetryPull.objects.filter(vehicle=clearance.vehicle, outcome="ok").first(),
        timeout=60,
        message="the worker's pull",
    )
    assert TelemetrySnapshot.objects.filter(vehicle=clearance.vehicle, source="pull").exists()
    assert row.state == "pending" and row.attempts == 0
    assert row.next_attempt_at > timezone.now() + timedelta(seconds=200)  # one interval later
