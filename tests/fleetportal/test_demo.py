import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from notifications.models import AlertRule
from organizations.models import Membership, Organization, Role

pytestmark = pytest.mark.django_db


def test_demo_is_idempotent_and_its_printed_login_works(capsys, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    call_command("demo")
    first = capsys.readouterr().out
    call_command("demo")
    second = capsys.readouterr().out
    password = next(
        line.split(":", 1)[1].strip() for line in first.splitlines() if "password:" in line
    )
    assert password and f"password: {password}" in second
    assert Organization.objects.filter(name="Demo Fleet").count() == 1
    assert get_user_model().objects.filter(username="demo").count() == 1
    membership = Membership.objects.get(user__username="demo")
    assert membership.role == Role.OWNER
    # Logins are throttled per client address, so authentication always comes with a request.
    request = RequestFactory().post("/login/")
    assert authenticate(request, username="demo", password=password) is not None


def test_the_demo_has_alert_rules_once_and_leaves_the_users_own(capsys):
    call_command("demo")
    organization = Organization.objects.get(name="Demo Fleet")
    names = set(AlertRule.objects.filter(organization=organization).values_list("name", flat=True))
    assert {"Clearance rejected", "Pending over 10 days", "Battery below 25 %"} <= names
    AlertRule.objects.filter(name="Clearance rejected").delete()
    call_command("demo")
    assert not AlertRule.objects.filter(name="Clearance rejected").exists()
    assert "Alert rules:" in capsys.readouterr().out


def test_the_demo_fleet_is_in_every_clearance_state_with_history(capsys):
    from clearance.models import Clearance, ClearanceEvent
    from clearance.statuses import ORDER as STATUS_ORDER
    from telemetry.models import TelemetrySnapshot
    from vehicles.models import Vehicle

    call_command("demo")
    organization = Organization.objects.get(name="Demo Fleet")
    vehicles = Vehicle.objects.filter(organization=organization)
    assert 38 <= vehicles.count() <= 45
    assert vehicles.values("brand").distinct().count() >= 8
    fleet = vehicles.exclude(vin__startswith="2HM")
    assert not fleet.filter(license_plate="").exists()
    assert not fleet.filter(nickname="").exists()
    assert all(tags.get("team") for tags in fleet.values_list("tags", flat=True))
    statuses = set(
        Clearance.objects.filter(vehicle__organization=organization).values_list(
            "status", flat=True
        )
    )
    # Queued: the seed VINs until the worker sends them; rejected: the seed VIN after 3 hours.
    assert set(STATUS_ORDER) - statuses == {"rejected"}
    assert vehicles.filter(clearance__isnull=True).count() == 2
    # A revoked vehicle's history went through the state machine, as a sync would record it.
    revoked = Clearance.objects.filter(status="revoked").first()
    moves = list(
        ClearanceEvent.objects.filter(clearance=revoked)
        .order_by("at", "pk")
        .values_list("to_status", flat=True)
    )
    assert moves == ["queued", "pending", "approved", "revoked"]
    # Approved vehicles have two days of history, ending near now, with their last-seen time.
    approved = fleet.filter(clearance__status="approved")
    assert approved.count() >= 20
    assert not approved.filter(last_seen_at__isnull=True).exists()
    one = approved.first()
    snapshots = TelemetrySnapshot.objects.filter(vehicle=one)
    assert snapshots.count() >= 150
    assert snapshots.filter(ignition="on").exists() and snapshots.filter(speed_kmh=0).exists()
    # Not twice.
    before = TelemetrySnapshot.objects.count()
    call_command("demo")
    assert TelemetrySnapshot.objects.count() == before
    assert "Fleet vehicles: 32" in capsys.readouterr().out
