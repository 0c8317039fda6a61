"""The vehicle page names the HM application once and says when HM last told us anything."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clearance.models import Credential
from clearance.wording import credential_label, last_heard_from_hm
from tests.factories import ClearanceFactory, CredentialFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "environment", "label"),
    [
        ("Simulator", "simulator", "Simulator (offline stand-in)"),
        ("Local simulator", "simulator", "Local simulator (offline stand-in)"),
        ("Test app", "simulator", "Test app (Simulator, offline stand-in)"),
        ("Main app", "production", "Main app (Production)"),
        ("Production", "production", "Production"),
        ("HM Sandbox", "sandbox", "HM Sandbox"),
        ("Trial", "sandbox", "Trial (Sandbox)"),
    ],
)
def test_credential_label(name, environment, label):
    assert credential_label(name, environment) == label


def test_the_vehicle_page_names_the_application_once(viewer_client, organization):
    credential = CredentialFactory(organization=organization, name="Simulator")
    clearance = ClearanceFactory(vehicle__organization=organization, credential=credential)
    content = viewer_client.get(
        reverse("vehicles:detail", args=[clearance.vehicle.public_id])
    ).content.decode()
    assert "<dd>Simulator (offline stand-in)</dd>" in content
    assert "Simulator (Simulator" not in content


def test_bulk_request_picker_names_the_application_once(manager_client, organization):
    CredentialFactory(organization=organization, name="Simulator")
    CredentialFactory(
        organization=organization, name="Fleet", environment=Credential.Environment.SANDBOX
    )
    vehicle = ClearanceFactory(vehicle__organization=organization, status="rejected").vehicle
    content = manager_client.post(
        reverse("vehicles:bulk"), {"action": "request", "vehicle": [str(vehicle.public_id)]}
    ).content.decode()
    assert ">Simulator (offline stand-in)</option>" in content
    assert ">Fleet (Sandbox)</option>" in content


def test_last_heard_is_the_latest_news_from_hm():
    now = timezone.now()
    clearance = ClearanceFactory.build(
        status="approved",
        last_synced_at=now - timedelta(hours=3),
        requested_at=now - timedelta(days=2),
        status_known_at=now - timedelta(minutes=5),  # the webhook that approved it
    )
    assert last_heard_from_hm(clearance) == now - timedelta(minutes=5)
    # Queued is our own doing: when we saved it is not news from HM.
    clearance.status = "queued"
    assert last_heard_from_hm(clearance) == now - timedelta(hours=3)
    fresh = ClearanceFactory.build(status="queued", status_known_at=now)
    assert last_heard_from_hm(fresh) is None
    assert last_heard_from_hm(None) is None


def test_the_vehicle_page_shows_when_hm_last_said_something(viewer_client, organization):
    clearance = ClearanceFactory(
        vehicle__organization=organization,
        status="approved",
        requested_at=timezone.now() - timedelta(days=1),
        status_known_at=timezone.now() - timedelta(minutes=7),  # webhook; no sync yet
    )
    url = reverse("vehicles:detail", args=[clearance.vehicle.public_id])
    content = viewer_client.get(url).content.decode()
    assert "Last checked with HM" not in content
    assert "Last news from HM" in content
    assert "7\xa0minutes ago</time>" in content.split('id="last-heard"')[1][:300]
    queued = ClearanceFactory(vehicle__organization=organization, status="queued")
    content = viewer_client.get(
        reverse("vehicles:detail", args=[queued.vehicle.public_id])
    ).content.decode()
    assert 'id="last-heard">nothing yet</dd>' in content
