"""A live change re-renders every region of the vehicle page that depends on the clearance in
the same answer: the clearance card, the Vehicle card and the defleet dialog (out of band), and
tells the telemetry panel (another app's region) to reload through HX-Trigger."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from clearance.models import Clearance
from tests.factories import ClearanceFactory

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def test_a_change_re_renders_every_dependent_region_and_tells_the_others(
    manager_client, organization
):
    clearance = ClearanceFactory(
        vehicle__organization=organization, status="queued", requested_at=None
    )
    vehicle = clearance.vehicle
    url = reverse("vehicles:status", args=[vehicle.public_id])
    quiet = manager_client.get(url + "?shown=queued", headers=HTMX)
    assert quiet.status_code == 200 and "HX-Trigger" not in quiet
    assert 'id="requested-at">not yet' in quiet.content.decode()

    now = timezone.now()
    Clearance.objects.filter(pk=clearance.pk).update(
        status="approved", requested_at=now, status_known_at=now
    )
    response = manager_client.get(url + "?shown=queued", headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 286  # final: the card stops polling
    assert response["HX-Trigger"] == "fleetportal:clearance-changed"
    assert 'id="vehicle-status-badge">Approved' in content
    facts = content[content.index('id="vehicle-facts"') :]
    assert 'hx-swap-oob="true"' in facts[:120]
    assert "not yet" not in facts and "nothing yet" not in facts  # requested, news from HM
    dialog = content[content.index('id="defleet-slot"') :]
    assert 'hx-swap-oob="true"' in dialog[:80] and "Yes, defleet" in dialog and "Revoked" in dialog


def test_the_defleet_dialog_is_on_the_page_whatever_the_status(manager_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="queued")
    page = manager_client.get(reverse("vehicles:detail", args=[clearance.vehicle.public_id]))
    content = page.content.decode()
    assert '<dialog id="defleet-dialog"' in content and "Yes, defleet" not in content
    assert "not been sent to High Mobility yet" in content  # why it cannot be defleeted now


def test_the_telemetry_panel_listens_for_clearance_changes(manager_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    panel = manager_client.get(
        reverse("telemetry:panel", args=[clearance.vehicle.public_id]), headers=HTMX
    ).content.decode()
    assert "fleetportal:clearance-changed from:body" in panel
    assert "it is pending now" in panel


def test_the_two_odometers_are_labelled(manager_client, organization):
    clearance = ClearanceFactory(
        vehicle__organization=organization, status="approved", vehicle__odometer_km=87351
    )
    content = manager_client.get(
        reverse("vehicles:detail", args=[clearance.vehicle.public_id])
    ).content.decode()
    assert "Odometer for the carmaker" in content and "87,351 km" in content
    assert "control value sent with the clearance request" in content
