"""The carmaker's own moves: an approved access ended by the owner (revoked, with its webhook),
and vehicle data the car could not read (HM's failures)."""

from datetime import timedelta

import pytest

from simulator import services, webhooks
from simulator.behaviour import CARMAKER_REVOKED_REASON
from simulator.errors import ApiError
from simulator.models import SimWebhookDelivery

VIN = "WBADT43452G296403"


def approved(app, sim_clock):
    services.request_clearances(app, [{"vin": VIN, "brand": "bmw"}])
    sim_clock.advance(timedelta(seconds=10))
    webhooks.detect_changes()
    assert services.clearance_status(app, VIN) == "approved"


def test_the_carmaker_revokes_an_approved_access_with_a_webhook(sim_app, sim_clock):
    app, _ = sim_app
    services.set_webhook(app, "http://127.0.0.1:9/hooks", "s3cret")
    approved(app, sim_clock)
    services.revoke_as_carmaker(app, VIN)
    assert services.clearance_status(app, VIN) == "revoked"
    last = SimWebhookDelivery.objects.filter(vin=VIN).order_by("pk").last()
    assert '"action":"revoked"' in last.body and CARMAKER_REVOKED_REASON in last.body
    listed = services.get_clearance(app, VIN)
    assert [entry["status"] for entry in listed["changelog"]][-2:] == ["approved", "revoked"]
    # Nothing changes afterwards, and a DELETE is refused: the access is already removed.
    sim_clock.advance(timedelta(hours=1))
    assert webhooks.detect_changes() == 0
    with pytest.raises(ApiError) as refused:
        services.delete_clearance(app, VIN)
    assert refused.value.status == 409


def test_only_an_approved_access_can_be_revoked_by_the_carmaker(sim_app):
    app, _ = sim_app
    services.request_clearances(app, [{"vin": VIN, "brand": "bmw"}])
    with pytest.raises(ValueError, match="not approved"):
        services.revoke_as_carmaker(app, VIN)


def test_failing_fields_come_as_hm_failures(sim_app, sim_clock):
    app, _ = sim_app
    approved(app, sim_clock)
    app.failing_fields = "odometer_km speed_kmh"
    app.save()
    data = services.vehicle_data(app, VIN)
    odometer = data["diagnostics"]["odometer"]
    assert "data" not in odometer
    assert odometer["failure"]["reason"] == "execution_timeout"
    assert data["diagnostics"]["speed"]["failure"]
    assert "data" in data["vehicle_location"]["coordinates"]
