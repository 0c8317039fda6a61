"""demo: a simulated HM app, a simulator credential wired to it, sandbox vehicles queued once."""

from io import StringIO

import pytest
from django.core.management import call_command

from clearance.models import Clearance, ClearanceEvent, Credential
from clearance.services.connection_check import check_connection
from clearance.services.webhooks import webhook_url_for
from simulator.models import SimulatedApp
from vehicles.models import Vehicle


def demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def test_demo_wires_a_simulator_credential_and_queues_sandbox_vehicles_once(
    live_server, transactional_db, settings, monkeypatch
):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-for-tests")
    settings.SITE_URL = live_server.url
    settings.HM_SIMULATOR_BASE_URL = f"{live_server.url}/simulator"
    first = demo()
    credential = Credential.objects.get(name="Simulator")
    app = SimulatedApp.objects.get(client_id=credential.client_id)
    assert credential.environment == "simulator"
    assert credential.client_secret and credential.client_secret_set_at
    assert app.webhook_url == webhook_url_for(credential)
    assert app.webhook_secret == credential.webhook_secret != ""
    assert "password: demo-password-for-tests" in first
    assert credential.client_secret not in first and credential.webhook_secret not in first

    vehicles = Vehicle.objects.filter(organization=credential.organization)
    # The 8 sandbox vehicles are queued; the rest of the demo fleet (fleetportal/demo_fleet.py)
    # comes with its clearance history, two vehicles without a clearance.
    assert vehicles.count() == 40
    assert vehicles.get(vin="2HM00000000000001").odometer_km == 2050
    assert {"2HM00000000000002", "2HM00000000000003"} <= set(vehicles.values_list("vin", flat=True))
    assert Clearance.objects.filter(credential=credential).count() == 38
    assert Clearance.objects.filter(credential=credential, status="queued").count() == 8
    assert "8 newly queued" in first

    # The credential really works against the simulator.
    result = check_connection(credential)
    assert result.ok, result.message

    # Idempotent: same app, same credential, nothing re-requested, login still printed. A
    # finished clearance (rejected) would be re-queued by queue_clearance_requests; the demo
    # must leave it alone. (A Celery worker may be running and moving statuses meanwhile, so
    # count "queued" events rather than reading statuses.)
    Clearance.objects.filter(vehicle__vin="2HM00000000000003").update(status="rejected")
    queued_events = ClearanceEvent.objects.filter(to_status="queued").count()
    second = demo()
    assert SimulatedApp.objects.count() == 1
    assert Credential.objects.count() == 1
    assert Credential.objects.get().client_secret == credential.client_secret
    assert Vehicle.objects.count() == 40
    assert "0 newly queued" in second
    assert ClearanceEvent.objects.filter(to_status="queued").count() == queued_events == 38
    assert "password: demo-password-for-tests" in second


@pytest.mark.django_db
def test_demo_follows_a_new_site_url(settings, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "pw-for-tests-1")
    settings.SITE_URL = "http://old.example"
    demo()
    settings.SITE_URL = "http://new.example"
    demo()
    credential = Credential.objects.get(name="Simulator")
    app = SimulatedApp.objects.get(client_id=credential.client_id)
    assert app.webhook_url.startswith("http://new.example/webhooks/high-mobility/")
    assert app.webhook_secret == credential.webhook_secret


@pytest.mark.django_db
def test_demo_without_the_simulator(settings, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "pw-for-tests-2")
    settings.SIMULATOR_ENABLED = False
    out = demo()
    assert "Simulator disabled" in out and "password: pw-for-tests-2" in out
    assert not Credential.objects.exists()
