"""Defleeting pending vehicles: the dialog and the bulk confirmation say beforehand that HM may
refuse; a refusal (or any last error) shows on the vehicle's row and page; a queued vehicle whose
sending failed says it is being retried."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clearance.models import Clearance
from clearance.statuses import cancel_refusal_expected
from tests.factories import ClearanceFactory
from tests.vehicles.test_fleet_overview import make_fleet

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
REFUSED = (
    "This carmaker does not allow canceling a pending request. The vehicle can be defleeted "
    "once it is approved, or the request will end by itself."
)


def detail(client, vehicle) -> str:
    return client.get(reverse("vehicles:detail", args=[vehicle.public_id])).content.decode()


def pending(organization, brand, *, sent_ago=timedelta(days=3)):
    return ClearanceFactory(
        vehicle__organization=organization,
        vehicle__brand=brand,
        status="pending",
        requested_at=timezone.now() - sent_ago,
    )


def test_the_dialog_says_some_carmakers_refuse_and_what_happens_then(manager_client, organization):
    content = detail(manager_client, pending(organization, "volkswagen").vehicle)
    assert "if the carmaker allows it, the status becomes <strong>Canceling</strong>" in content
    assert "Some carmakers do not let High Mobility withdraw a pending request" in content
    assert "the vehicle stays Pending" in content
    assert "Mercedes-Benz" in content and "only one day after the request was sent" in content
    assert 'id="cancel-refusal-expected"' not in content  # Volkswagen allows it, sent 3 days ago


def test_the_dialog_warns_when_the_carmaker_does_not_allow_it(manager_client, organization):
    content = detail(manager_client, pending(organization, "bmw").vehicle)
    assert 'id="cancel-refusal-expected"' in content
    assert "BMW is not among the carmakers that allow withdrawing a pending request" in content


def test_the_dialog_warns_when_the_request_is_less_than_a_day_old(manager_client, organization):
    clearance = pending(organization, "audi", sent_ago=timedelta(hours=2))
    content = detail(manager_client, clearance.vehicle)
    assert "sent less than a day ago, so High Mobility will refuse" in content


def test_an_approved_vehicle_gets_no_cancel_warning(manager_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")
    content = detail(manager_client, clearance.vehicle)
    assert "Revoking" in content
    assert "Some carmakers do not let" not in content


def test_cancel_refusal_expected_follows_the_protocol():
    now = timezone.now()
    assert cancel_refusal_expected("mercedes-benz", now - timedelta(days=2), now) == ""
    assert cancel_refusal_expected("peugeot", None, now) == ""
    assert "Tesla is not among" in cancel_refusal_expected("tesla", now - timedelta(days=9), now)
    assert "less than a day" in cancel_refusal_expected("cupra", now - timedelta(hours=23), now)


def test_bulk_confirmation_says_which_pending_requests_will_likely_be_refused(
    manager_client, organization
):
    vehicles = [
        pending(organization, "bmw").vehicle,
        pending(organization, "skoda").vehicle,
        ClearanceFactory(vehicle__organization=organization, status="approved").vehicle,
    ]
    content = manager_client.post(
        reverse("vehicles:bulk"),
        {"action": "defleet", "vehicle": [str(v.public_id) for v in vehicles]},
    ).content.decode()
    assert "2 pending request(s) are withdrawn (canceling → canceled) where the carmaker" in content
    assert "1 of these pending request(s) will most likely be refused" in content
    assert 'id="cancel-refusal-note"' in content and "the vehicle stays Pending" in content


def test_bulk_confirmation_without_pending_vehicles_has_no_cancel_note(
    manager_client, organization
):
    vehicle = ClearanceFactory(vehicle__organization=organization, status="approved").vehicle
    content = manager_client.post(
        reverse("vehicles:bulk"), {"action": "defleet", "vehicle": [str(vehicle.public_id)]}
    ).content.decode()
    assert 'id="cancel-refusal-note"' not in content


def test_a_refused_defleet_shows_on_the_row_and_the_vehicle_page(manager_client, organization):
    clearance = pending(organization, "bmw")
    Clearance.objects.filter(pk=clearance.pk).update(
        last_error=REFUSED, last_error_at=timezone.now() - timedelta(minutes=2)
    )
    vehicle = clearance.vehicle
    fleet = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert f'id="problem-{vehicle.public_id}"' in fleet
    assert "This carmaker does not allow canceling a pending request." in fleet
    row = manager_client.get(reverse("vehicles:row", args=[vehicle.public_id]), headers=HTMX)
    assert "does not allow canceling" in row.content.decode()
    page = detail(manager_client, vehicle)
    assert 'id="vehicle-problem"' in page and "does not allow canceling" in page


def test_a_row_without_error_shows_none(manager_client, organization):
    (vehicle,) = make_fleet(organization, ["pending"])
    fleet = manager_client.get(reverse("vehicles:fleet")).content.decode()
    assert f'id="problem-{vehicle.public_id}"' not in fleet


def test_showing_errors_on_rows_costs_no_query(manager_client, organization):
    make_fleet(organization, ["pending", "approved", "queued", "revoking"] * 5)
    url = reverse("vehicles:fleet")
    manager_client.get(url)  # warm up (session, content types)
    with CaptureQueriesContext(connection) as without_errors:
        manager_client.get(url)
    Clearance.objects.update(last_error=REFUSED, last_error_at=timezone.now())
    with CaptureQueriesContext(connection) as with_errors:
        content = manager_client.get(url).content.decode()
    assert content.count('class="row-problem') == 20
    assert len(with_errors) == len(without_errors)


def test_a_queued_vehicle_that_failed_to_send_says_it_is_being_retried(viewer_client, organization):
    clearance = ClearanceFactory(
        vehicle__organization=organization,
        status="queued",
        last_error="High Mobility could not be reached (connection refused).",
        last_error_at=timezone.now() - timedelta(minutes=3),
    )
    content = detail(viewer_client, clearance.vehicle)
    assert "sending it to High Mobility has not worked yet" in content
    assert "FleetPortal tries again by itself" in content
    assert "check that the background worker is running" not in content
    assert "The last attempt to send it failed" in content
    assert "connection refused" in content and "FleetPortal is retrying by itself." in content
    # Polled partial says the same.
    status = viewer_client.get(
        reverse("vehicles:status", args=[clearance.vehicle.public_id]), headers=HTMX
    ).content.decode()
    assert "FleetPortal is retrying by itself." in status


def test_a_queued_vehicle_without_error_keeps_the_usual_words(viewer_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="queued")
    content = detail(viewer_client, clearance.vehicle)
    assert "it is sent within a few seconds" in content
    assert "retrying by itself" not in content
