"""The audit log: an entry for each action, by a person or a token, with IP; one insert per bulk
action; secrets never in entries; the owners' page with filters and CSV; retention."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from api.models import Scope
from api.tokens import create_token, revoke_token
from audit import log
from audit.context import acting, person
from audit.models import Action, AuditEntry
from clearance.models import ClearanceStatus, Credential
from clearance.services import fleet_actions
from organizations import services as org_services
from organizations.models import Membership, Role
from tests.api.conftest import ApiClient, vin
from tests.factories import ClearanceFactory, CredentialFactory, MembershipFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db
SECRET = "s3cr3t-value-never-logged"


def entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_sign_in_failed_sign_in_and_sign_out(organization, owner_user):
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.post("/login/", {"username": owner_user.username, "password": "wrong"})
    client.post(
        "/login/", {"username": owner_user.username, "password": "correct horse battery staple"}
    )
    client.post("/logout/")
    (failed, *_) = entries(Action.SIGN_IN_FAILED)
    assert failed.organization == organization and failed.actor == owner_user.username
    assert "wrong" not in str(failed.details)
    (signed_in,) = entries(Action.SIGN_IN)
    assert signed_in.user == owner_user and signed_in.ip == "203.0.113.7"
    assert signed_in.organization == organization
    (signed_out,) = entries(Action.SIGN_OUT)
    assert signed_out.user == owner_user


def test_unknown_name_failing_belongs_to_no_organization(db):
    Client().post("/login/", {"username": "nobody", "password": "x"})
    (failed,) = entries(Action.SIGN_IN_FAILED)
    assert failed.organization is None and failed.details == {"username": "nobody"}


def test_api_token_created_and_revoked_by_a_person(owner_client, organization, owner_user):
    owner_client.post("/settings/api-tokens/", {"name": "Warehouse", "scope": "read"})
    (created,) = entries(Action.API_TOKEN_CREATED)
    assert created.user == owner_user and "Warehouse" in created.object_label
    token = created.object_id
    owner_client.post(f"/settings/api-tokens/{token}/revoke/")
    (revoked,) = entries(Action.API_TOKEN_REVOKED)
    assert revoked.user == owner_user and revoked.object_id == token
    # The token's text or hash is never in an entry.
    for entry in AuditEntry.objects.all():
        assert "fpt_" not in str(entry.details) + entry.object_label.replace(
            entry.object_label.split("(")[-1], ""
        )


def test_vehicles_added_and_defleeted_through_the_api_name_the_token(
    organization, owner_user, monkeypatch
):
    monkeypatch.setattr(
        "clearance.services.defleet.queue_defleet", lambda ids, actor=None: len(ids)
    )
    credential = CredentialFactory(organization=organization)
    token, text = create_token(organization, name="FMS", scope=Scope.WRITE, by=owner_user)
    client = ApiClient(text)
    body = {"vehicles": [{"vin": vin(i), "brand": "vw"} for i in range(30)]}
    with CaptureQueriesContext(connection) as ctx:
        client.post("/api/v1/vehicles", body)
    audit_inserts = [
        q for q in ctx.captured_queries if q["sql"].startswith('INSERT INTO "audit_auditentry"')
    ]
    assert len(audit_inserts) == 1  # one insert for the whole batch
    added = entries(Action.VEHICLE_ADDED)
    assert len(added) == 30
    assert all(e.token_id == token.pk and e.user is None and "FMS" in e.actor for e in added)
    for vehicle in Vehicle.objects.all()[:3]:
        vehicle.clearance.status = ClearanceStatus.APPROVED
        vehicle.clearance.save()
    client.post("/api/v1/vehicles/defleet", {"vins": [vin(0), vin(1), vin(2)]})
    defleeted = entries(Action.VEHICLE_DEFLEETED)
    assert sorted(e.object_label for e in defleeted) == [vin(0), vin(1), vin(2)]
    assert credential.pk  # used


def test_bulk_defleet_on_the_page_writes_one_insert(organization, manager_user, monkeypatch):
    monkeypatch.setattr(
        "clearance.services.defleet.queue_defleet", lambda ids, actor=None: len(ids)
    )
    credential = CredentialFactory(organization=organization)
    for i in range(40):
        ClearanceFactory(
            vehicle=VehicleFactory(organization=organization, vin=vin(i)),
            credential=credential,
            status=ClearanceStatus.APPROVED,
        )
    with acting(person(manager_user, "198.51.100.1")), CaptureQueriesContext(connection) as ctx:
        fleet_actions.defleet_vehicles(
            Vehicle.objects.filter(organization=organization), user=manager_user
        )
    audit_inserts = [q for q in ctx.captured_queries if "audit_auditentry" in q["sql"]]
    assert len(audit_inserts) == 1
    defleeted = entries(Action.VEHICLE_DEFLEETED)
    assert len(defleeted) == 40
    assert {e.actor for e in defleeted} == {manager_user.username}
    assert {e.ip for e in defleeted} == {"198.51.100.1"}


def test_vehicle_added_and_edited_on_the_pages(manager_client, organization, manager_user):
    CredentialFactory(organization=organization)
    credential = Credential.objects.get(organization=organization)
    manager_client.post(
        "/fleet/add/", {"vin": vin(1), "brand": "volkswagen", "credential": credential.pk}
    )
    (added,) = entries(Action.VEHICLE_ADDED)
    assert added.object_label == vin(1) and added.user == manager_user
    vehicle = Vehicle.objects.get(vin=vin(1))
    manager_client.post(
        f"/fleet/{vehicle.public_id}/edit/",
        {"nickname": "Van 12", "license_plate": "B-X 1", "tags": "", "odometer_km": ""},
    )
    (edited,) = entries(Action.VEHICLE_EDITED)
    assert edited.details["nickname"] == "— → Van 12"
    assert edited.details["license_plate"] == "— → B-X 1"


def test_credential_changes_name_fields_never_values(owner_client, organization):
    from tests.clearance.test_credentials_pages import base_data

    data = base_data(client_secret=SECRET, webhook_secret=SECRET)
    owner_client.post("/credentials/add/", data)
    credential = Credential.objects.get(organization=organization)
    owner_client.post(
        f"/credentials/{credential.public_id}/",
        base_data(client_secret="another-" + SECRET, name="Renamed"),
    )
    owner_client.post(f"/credentials/{credential.public_id}/test/")
    (created,) = entries(Action.CREDENTIAL_CREATED)
    (changed,) = entries(Action.CREDENTIAL_CHANGED)
    assert "client_secret" in changed.details["fields"] and "name" in changed.details["fields"]
    assert entries(Action.CREDENTIAL_TESTED)
    for entry in AuditEntry.objects.all():
        assert SECRET not in str(entry.details) + entry.object_label + entry.actor
    assert created.object_label == "Production app"


def test_secrets_are_scrubbed_from_details_whatever_the_caller_passes(organization):
    log.record(
        Action.CREDENTIAL_CHANGED,
        organization=organization,
        target=log.Target(
            "credential",
            1,
            "x",
            {"client_secret": SECRET, "nested": {"password": SECRET}, "fields": "client_secret"},
        ),
    )
    (entry,) = AuditEntry.objects.all()
    assert SECRET not in str(entry.details)
    assert entry.details["fields"] == "client_secret"


def test_members_and_invitations(organization, owner_user):
    owner = Membership.objects.get(user=owner_user)
    member = MembershipFactory(organization=organization, role=Role.VIEWER)
    with acting(person(owner_user)):
        org_services.change_role(member, Role.MANAGER)
        org_services.remove_member(member)
    (changed,) = entries(Action.MEMBER_ROLE_CHANGED)
    assert changed.details == {"role": "viewer → manager"} and changed.user == owner_user
    assert entries(Action.MEMBER_REMOVED)[0].object_label == member.user.username
    invitation = org_services.invite(
        organization, email="new@example.com", role=Role.VIEWER, by=owner
    )
    org_services.revoke(invitation, by=owner)
    assert entries(Action.INVITATION_SENT)[0].object_label == "new@example.com"
    assert entries(Action.INVITATION_REVOKED)[0].object_label == "new@example.com"


def test_export_download_is_recorded(viewer_client, viewer_user):
    response = viewer_client.get("/imports/export/", {"status": "approved"})
    b"".join(response.streaming_content)
    (exported,) = entries(Action.EXPORT_DOWNLOADED)
    assert exported.user == viewer_user and exported.details == {"status": "approved"}


# --- the owners' page ----------------------------------------------------------------------


def _seed(organization, other_organization, owner_user):
    AuditEntry.objects.all().delete()  # the test clients' own sign-ins
    with acting(person(owner_user, "192.0.2.1")):
        log.record_many(
            Action.VEHICLE_DEFLEETED,
            [log.Target("vehicle", "", vin(i)) for i in range(3)],
            organization=organization,
        )
        log.record(
            Action.VEHICLE_ADDED,
            organization=organization,
            target=log.Target("vehicle", "", vin(9)),
        )
        log.record(
            Action.VEHICLE_DEFLEETED,
            organization=other_organization,
            target=log.Target("vehicle", "", vin(0)),
        )


def test_owners_page_answers_who_defleeted_these_vehicles(
    owner_client, organization, other_organization, owner_user
):
    _seed(organization, other_organization, owner_user)
    page = owner_client.get("/audit/", {"action": "vehicle_defleeted", "vehicle": vin(1).lower()})
    assert page.status_code == 200
    rows = list(page.context["page"])
    assert [(r.object_label, r.actor) for r in rows] == [(vin(1), owner_user.username)]
    everything = owner_client.get("/audit/").context["page"]
    assert len(everything) == 4  # not the other organization's
    today = timezone.localdate()
    assert (
        len(
            owner_client.get(
                "/audit/", {"date_from": today.isoformat(), "date_to": today.isoformat()}
            ).context["page"]
        )
        == 4
    )
    assert (
        len(
            owner_client.get(
                "/audit/", {"date_to": (today - timedelta(days=1)).isoformat()}
            ).context["page"]
        )
        == 0
    )
    assert len(owner_client.get("/audit/", {"who": "nobody"}).context["page"]) == 0


def test_csv_export_of_the_filter(owner_client, organization, other_organization, owner_user):
    _seed(organization, other_organization, owner_user)
    response = owner_client.get("/audit/", {"action": "vehicle_defleeted", "format": "csv"})
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("when (UTC),who,action")
    assert len(lines) == 4
    assert all("Vehicle defleeted" in line and "192.0.2.1" in line for line in lines[1:])


@pytest.mark.parametrize("who", ["manager_client", "viewer_client"])
def test_only_owners_see_the_audit_log(request, who):
    assert request.getfixturevalue(who).get("/audit/").status_code == 403


def test_admin_is_read_only(admin_client, organization, owner_user):
    with acting(person(owner_user)):
        log.record(
            Action.VEHICLE_ADDED,
            organization=organization,
            target=log.Target("vehicle", "", vin(1)),
        )
    entry = AuditEntry.objects.get(action=Action.VEHICLE_ADDED)
    assert admin_client.get("/admin/audit/auditentry/").status_code == 200
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert (
        admin_client.post(
            f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_retention_purge(organization, settings):
    from audit.tasks import purge_audit_log

    settings.AUDIT_RETENTION_DAYS = 30
    log.record(
        Action.VEHICLE_ADDED, organization=organization, target=log.Target("vehicle", "", vin(1))
    )
    old = AuditEntry.objects.create(
        organization=organization,
        actor="x",
        action=Action.VEHICLE_ADDED,
        at=timezone.now() - timedelta(days=31),
    )
    assert purge_audit_log() == 1
    assert not AuditEntry.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.count() == 1


def test_token_revoked_by_service_is_recorded(organization):
    token, _ = create_token(organization, name="t")
    revoke_token(token)
    assert entries(Action.API_TOKEN_REVOKED)[0].actor == "FleetPortal"
