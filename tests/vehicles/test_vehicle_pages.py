"""Add vehicle, vehicle detail, defleet, re-onboard, bulk actions (the lifecycle service is real
except for the HM DELETE, which is replaced by a stand-in: the browser tests use the simulator)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clearance.models import Clearance, ClearanceEvent, ClearanceStatus
from clearance.services import defleet as defleet_service
from tests.factories import ClearanceFactory, CredentialFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
GOOD_VIN = "1M8GDM9AXKP042788"  # valid ISO 3779 check digit
NO_CHECK_DIGIT_VIN = "WVWZZZ1KZ6W000001"  # European style, check digit does not match
WRONG_CHECK_DIGIT_VIN = "1M8GDM9A1KP042788"  # made for North America: it must match


@pytest.fixture
def credential(organization):
    return CredentialFactory(organization=organization, name="Main app")


@pytest.fixture
def fake_delete(monkeypatch):
    """Replace the HM DELETE by a stand-in that moves approved -> revoking, pending -> canceling."""
    calls = []

    def defleet(vehicles, *, actor=None, clients=None):
        outcomes = []
        for vehicle in vehicles:
            clearance = Clearance.objects.get(vehicle=vehicle)
            calls.append(vehicle.vin)
            to = "revoking" if clearance.status == "approved" else "canceling"
            ClearanceEvent.objects.create(
                clearance=clearance,
                from_status=clearance.status,
                to_status=to,
                at=timezone.now(),
                source="user",
                actor=actor,
            )
            clearance.status = to
            clearance.save()
            outcomes.append(
                defleet_service.DefleetOutcome(vehicle.pk, vehicle.vin, True, status=to)
            )
        return outcomes

    monkeypatch.setattr(defleet_service, "defleet", defleet)
    return calls


@pytest.fixture
def queued_defleets(monkeypatch):
    calls = []

    def queue_defleet(vehicles, *, actor=None):
        calls.extend(v.vin for v in vehicles)
        return len(calls)

    monkeypatch.setattr(defleet_service, "queue_defleet", queue_defleet)
    return calls


# --- add a vehicle ---------------------------------------------------------------------------------


def add(client, **data):
    payload = {"vin": GOOD_VIN, "brand": "bmw", "license_plate": "", "nickname": "", "tags": ""}
    payload.update(data)
    return client.post(reverse("vehicles:add"), payload)


def test_add_vehicle_normalises_and_queues_the_clearance(
    manager_client, manager_user, organization, credential, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = add(
            manager_client,
            vin=" 1m8gdm9axkp042788 ",
            brand="bmw",
            license_plate="B-FP 1",
            nickname="Van 1",
            tags="vans, depot=berlin",
            odometer_km="2050",
            credential=credential.pk,
        )
    vehicle = Vehicle.objects.get(organization=organization)
    assert response.status_code == 302
    assert response["Location"] == reverse("vehicles:detail", args=[vehicle.public_id])
    assert vehicle.vin == GOOD_VIN
    assert vehicle.tags == {"vans": "", "depot": "berlin"}
    assert vehicle.odometer_km == 2050
    assert vehicle.clearance.status == ClearanceStatus.QUEUED
    assert vehicle.clearance.credential == credential
    event = vehicle.clearance.events.get()
    assert event.actor == manager_user
    assert len(callbacks) == 1  # the request goes out after commit


def test_the_only_credential_is_preselected(manager_client, credential):
    content = manager_client.get(reverse("vehicles:add")).content.decode()
    assert f'<option value="{credential.pk}" selected>' in content


def test_add_vehicle_without_any_credential_says_what_to_do(manager_client, owner_client):
    content = manager_client.get(reverse("vehicles:add")).content.decode()
    assert "Ask an owner of your organization to add a credential" in content
    assert "disabled" in content
    content = owner_client.get(reverse("vehicles:add")).content.decode()
    assert "Add a credential" in content


@pytest.mark.parametrize(
    ("vin", "message"),
    [
        ("WVWZZZ1KZ6W00000", "has 16 characters"),
        ("WVWZZZ1KZ6W00000I", "never use I, O or Q"),
        ("", "This field is required"),
    ],
)
def test_add_vehicle_errors_come_back_inline_through_htmx(manager_client, credential, vin, message):
    response = manager_client.post(
        reverse("vehicles:add"),
        {"vin": vin, "brand": "bmw", "credential": credential.pk},
        headers=HTMX,
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert content.lstrip().startswith('<form id="add-form"')
    assert message in content
    assert not Vehicle.objects.exists()


def test_add_vehicle_rejects_a_duplicate_vin(manager_client, organization, credential):
    VehicleFactory(organization=organization, vin=GOOD_VIN)
    response = add(manager_client, credential=credential.pk)
    assert "already in your fleet" in response.content.decode()


def test_check_digit_failure_is_only_a_warning(manager_client, organization, credential):
    european = manager_client.get(
        reverse("vehicles:check-vin"), {"vin": NO_CHECK_DIGIT_VIN}, headers=HTMX
    ).content.decode()
    assert "check digit" not in european  # most European VINs carry none
    feedback = manager_client.get(
        reverse("vehicles:check-vin"), {"vin": WRONG_CHECK_DIGIT_VIN}, headers=HTMX
    ).content.decode()
    assert "check digit" in feedback and "North America" in feedback
    response = add(manager_client, vin=WRONG_CHECK_DIGIT_VIN, brand="bmw", credential=credential.pk)
    assert response.status_code == 302
    assert Vehicle.objects.filter(vin=WRONG_CHECK_DIGIT_VIN).exists()
    page = manager_client.get(response["Location"]).content.decode()
    assert "check digit" in page  # the warning is shown as a toast


def test_check_vin_feedback(manager_client):
    ok = manager_client.get(reverse("vehicles:check-vin"), {"vin": GOOD_VIN}).content.decode()
    assert "Looks like a valid VIN" in ok
    bad = manager_client.get(reverse("vehicles:check-vin"), {"vin": "ABC"}).content.decode()
    assert "has 3 characters" in bad


def test_htmx_add_success_redirects_on_the_client(manager_client, credential):
    response = manager_client.post(
        reverse("vehicles:add"),
        {"vin": GOOD_VIN, "brand": "bmw", "credential": credential.pk},
        headers=HTMX,
    )
    assert response.headers["HX-Redirect"].startswith("/fleet/")


def test_brand_must_be_from_the_hm_list(manager_client, credential):
    response = add(manager_client, brand="trabant", credential=credential.pk)
    assert "Select a valid choice" in response.content.decode()


# --- vehicle detail ----------------------------------------------------------------------------------


def test_detail_explains_the_status_and_shows_the_timeline(
    viewer_client, organization, manager_user
):
    clearance = ClearanceFactory(
        vehicle__organization=organization, status="rejected", description="Odometer mismatch"
    )
    now = timezone.now()
    ClearanceEvent.objects.create(
        clearance=clearance,
        from_status="",
        to_status="queued",
        at=now - timedelta(hours=2),
        source="user",
        actor=manager_user,
    )
    ClearanceEvent.objects.create(
        clearance=clearance,
        from_status="queued",
        to_status="rejected",
        at=now - timedelta(minutes=5),
        source="webhook",
        detail="Odometer mismatch",
    )
    response = viewer_client.get(reverse("vehicles:detail", args=[clearance.vehicle.public_id]))
    content = response.content.decode()
    assert response.status_code == 200
    assert "The carmaker refused data access." in content
    assert "odometer" in content
    assert f"by {manager_user.username}" in content
    assert "HM webhook" in content
    assert re.search(r"5\Wminutes ago</time>", content)  # relative, exact time on hover
    assert '<time datetime="' in content and "title=" in content
    # A viewer gets no write controls.
    assert "Re-onboard" not in content and "Defleet" not in content


def test_detail_has_telemetry_panel_or_an_honest_empty_state(viewer_client, organization):
    vehicle = VehicleFactory(organization=organization)
    content = viewer_client.get(
        reverse("vehicles:detail", args=[vehicle.public_id])
    ).content.decode()
    try:
        url = reverse("telemetry:panel", args=[vehicle.public_id])
    except Exception:
        assert "Telemetry is not available" in content
    else:
        assert f'hx-get="{url}"' in content and 'hx-trigger="load"' in content


def test_status_partial_polls_until_terminal(viewer_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")
    url = reverse("vehicles:status", args=[clearance.vehicle.public_id])
    response = viewer_client.get(url, headers=HTMX)
    assert response.status_code == 200 and "every 3s" in response.content.decode()
    Clearance.objects.filter(pk=clearance.pk).update(status="approved")
    response = viewer_client.get(url, headers=HTMX)
    assert response.status_code == 286
    assert "<html" not in response.content.decode()


def test_defleet_dialog_says_what_will_happen(manager_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")
    content = manager_client.get(
        reverse("vehicles:detail", args=[clearance.vehicle.public_id])
    ).content.decode()
    assert '<dialog id="defleet-dialog"' in content
    assert "Revoking" in content and "Revoked" in content


def test_defleet_through_htmx_returns_the_status_with_a_toast(
    manager_client, organization, fake_delete
):
    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")
    url = reverse("vehicles:defleet", args=[clearance.vehicle.public_id])
    response = manager_client.post(url, headers=HTMX)
    content = response.content.decode()
    assert response.status_code == 200
    assert fake_delete == [clearance.vehicle.vin]
    assert "Revoking" in content
    assert 'id="toasts" hx-swap-oob="beforeend"' in content
    assert "Defleet sent for 1 vehicle" in content
    assert "every 3s" in content  # revoking: keeps polling


def test_defleet_refusal_is_explained(manager_client, organization, monkeypatch):
    clearance = ClearanceFactory(vehicle__organization=organization, status="pending")

    def refuse(vehicles, *, actor=None, clients=None):
        return [
            defleet_service.DefleetOutcome(
                clearance.vehicle.pk,
                clearance.vehicle.vin,
                False,
                message="A pending request can only be canceled one day after it was sent.",
            )
        ]

    monkeypatch.setattr(defleet_service, "defleet", refuse)
    response = manager_client.post(
        reverse("vehicles:defleet", args=[clearance.vehicle.public_id]), follow=True
    )
    assert "only be canceled one day after" in response.content.decode()


def test_reonboard_a_rejected_vehicle(manager_client, organization):
    clearance = ClearanceFactory(vehicle__organization=organization, status="rejected")
    response = manager_client.post(
        reverse("vehicles:reonboard", args=[clearance.vehicle.public_id])
    )
    assert response.status_code == 302
    clearance.refresh_from_db()
    assert clearance.status == ClearanceStatus.QUEUED


def test_request_clearance_for_a_vehicle_never_requested(manager_client, organization, credential):
    vehicle = VehicleFactory(organization=organization)
    manager_client.post(reverse("vehicles:reonboard", args=[vehicle.public_id]))
    assert Clearance.objects.get(vehicle=vehicle).credential == credential


# --- bulk actions ------------------------------------------------------------------------------------


def test_bulk_defleet_selected_rows_asks_first_then_acts(
    manager_client, organization, queued_defleets
):
    approved = ClearanceFactory(vehicle__organization=organization, status="approved").vehicle
    pending = ClearanceFactory(vehicle__organization=organization, status="pending").vehicle
    revoked = ClearanceFactory(vehicle__organization=organization, status="revoked").vehicle
    data = {
        "action": "defleet",
        "scope": "selected",
        "vehicle": [str(v.public_id) for v in (approved, pending, revoked)],
    }
    preview = manager_client.post(reverse("vehicles:bulk"), data)
    content = preview.content.decode()
    assert preview.status_code == 200
    assert "1 approved vehicle(s) lose data access" in content
    assert "1 pending request(s) are withdrawn" in content
    assert "1 vehicle will be skipped" in content
    assert queued_defleets == []
    done = manager_client.post(reverse("vehicles:bulk"), {**data, "confirm": "yes"}, follow=True)
    assert sorted(queued_defleets) == sorted([approved.vin, pending.vin])
    assert "Defleeting 2 vehicles in the background; 1 skipped" in done.content.decode()


def test_bulk_request_everything_matching_the_filter(manager_client, organization, credential):
    rejected = ClearanceFactory(
        vehicle__organization=organization,
        credential=credential,
        status="rejected",
        vehicle__brand="bmw",
    )
    ClearanceFactory(
        vehicle__organization=organization,
        credential=credential,
        status="rejected",
        vehicle__brand="audi",
    )
    never = VehicleFactory(organization=organization, brand="bmw")
    data = {"action": "request", "scope": "filter", "brand": "bmw", "confirm": "yes"}
    response = manager_client.post(reverse("vehicles:bulk"), data)
    assert response.status_code == 302
    assert response["Location"] == reverse("vehicles:fleet") + "?brand=bmw"
    statuses = dict(Clearance.objects.values_list("vehicle_id", "status"))
    assert statuses[rejected.vehicle_id] == "queued"
    assert statuses[never.pk] == "queued"
    assert sorted(statuses.values()) == ["queued", "queued", "rejected"]  # audi untouched


def test_bulk_ignores_other_organizations_vehicles(
    manager_client, organization, other_organization, queued_defleets
):
    foreign = ClearanceFactory(vehicle__organization=other_organization, status="approved").vehicle
    response = manager_client.post(
        reverse("vehicles:bulk"),
        {"action": "defleet", "vehicle": [str(foreign.public_id)], "confirm": "yes"},
        follow=True,
    )
    assert queued_defleets == []
    assert "No vehicles were selected" in response.content.decode()


def test_bulk_without_selection_says_so(manager_client, organization):
    response = manager_client.post(reverse("vehicles:bulk"), {"action": "defleet"}, follow=True)
    assert "tick some rows first" in response.content.decode()


# --- review fixes: races, transient failures, counts -----------------------------------------------


def test_a_vin_added_by_someone_else_meanwhile_is_a_form_error(
    manager_client, organization, credential, monkeypatch
):
    from vehicles.forms import VehicleAddForm

    real_clean_vin = VehicleAddForm.clean_vin

    def checked_then_added_elsewhere(form):
        vin = real_clean_vin(form)
        VehicleFactory(organization=organization, vin=vin, brand="bmw")
        return vin

    monkeypatch.setattr(VehicleAddForm, "clean_vin", checked_then_added_elsewhere)
    response = add(manager_client, credential=credential.pk)
    assert response.status_code == 200
    assert f"{GOOD_VIN} is already in your fleet." in response.content.decode()
    assert Vehicle.objects.filter(vin=GOOD_VIN).count() == 1
    assert not Clearance.objects.exists()


def test_a_defleet_hm_did_not_answer_is_retried_in_the_background(
    manager_client, organization, monkeypatch, queued_defleets
):
    clearance = ClearanceFactory(vehicle__organization=organization, status="approved")

    def time_out(vehicles, *, actor=None, clients=None):
        return [
            defleet_service.DefleetOutcome(
                clearance.vehicle.pk,
                clearance.vehicle.vin,
                False,
                transient=True,
                message="High Mobility did not answer within 30 s. The defleet will be tried again.",
            )
        ]

    monkeypatch.setattr(defleet_service, "defleet", time_out)
    response = manager_client.post(
        reverse("vehicles:defleet", args=[clearance.vehicle.public_id]), follow=True
    )
    content = response.content.decode()
    assert queued_defleets == [clearance.vehicle.vin]
    assert "Defleeting 1 vehicle in the background" in content
    assert "the defleet will be tried again in the background" in content


def test_bulk_request_does_not_count_vehicles_already_queued(
    manager_client, organization, credential
):
    queued = ClearanceFactory(vehicle__organization=organization, status="queued").vehicle
    rejected = ClearanceFactory(vehicle__organization=organization, status="rejected").vehicle
    preview = manager_client.post(
        reverse("vehicles:bulk"),
        {"action": "request", "vehicle": [str(queued.public_id), str(rejected.public_id)]},
    )
    assert preview.context["will_count"] == 1
    assert preview.context["skipped"] == 1


@pytest.mark.parametrize("credential_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_bulk_request_with_an_unknown_application_sends_nothing(
    manager_client, organization, credential, credential_id
):
    never = VehicleFactory(organization=organization)
    response = manager_client.post(
        reverse("vehicles:bulk"),
        {
            "action": "request",
            "vehicle": [str(never.public_id)],
            "send_with": credential_id,
            "confirm": "yes",
        },
        follow=True,
    )
    assert "The chosen HM application does not exist (any more)" in response.content.decode()
    assert not Clearance.objects.exists()


def test_bulk_request_sends_with_the_chosen_application_whatever_the_filter(
    manager_client, organization, credential
):
    """The application chosen on the confirmation page is not mistaken for the fleet filter."""
    other = CredentialFactory(organization=organization, name="Second app")
    never = VehicleFactory(organization=organization)
    preview = manager_client.post(
        reverse("vehicles:bulk"), {"action": "request", "scope": "filter"}
    ).content.decode()
    assert 'name="send_with"' in preview
    manager_client.post(
        reverse("vehicles:bulk"),
        {
            "action": "request",
            "scope": "filter",
            "send_with": str(other.public_id),
            "confirm": "yes",
        },
    )
    assert Clearance.objects.get(vehicle=never).credential == other
