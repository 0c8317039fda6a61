"""Audit entries of the remaining actions: alert rules, import confirmed, credential deleted,
clearance requested again, a member joining by invitation."""

import pytest

from audit.context import acting, person
from audit.models import Action, AuditEntry
from clearance.models import ClearanceStatus, Credential
from clearance.services import fleet_actions
from notifications import rules as rule_services
from organizations import services as org_services
from organizations.models import Membership, Role
from tests.factories import ClearanceFactory, CredentialFactory, UserFactory, VehicleFactory
from tests.imports.helpers import fleet_csv
from tests.imports.test_services import upload
from tests.notifications.conftest import make_rule
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_alert_rule_turned_off_and_deleted(organization, owner_user):
    rule = make_rule(organization, "clearance_rejected", name="Rejections")
    with acting(person(owner_user)):
        rule_services.set_enabled(rule, False)
        rule_services.delete_rule(rule)
    changes = entries(Action.ALERT_RULE_CHANGED)
    assert [e.details["change"] for e in changes] == ["turned off", "deleted"]
    assert {e.object_label for e in changes} == {"Rejections"}
    assert {e.user for e in changes} == {owner_user}


def test_import_confirmed(organization, manager_user, monkeypatch):
    from imports import services

    monkeypatch.setattr("imports.tasks.run_import_job.delay_on_commit", lambda *a, **k: None)
    job = upload(organization, manager_user, fleet_csv(3))
    with acting(person(manager_user)):
        services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    (confirmed,) = entries(Action.IMPORT_CONFIRMED)
    assert confirmed.object_label == "fleet.csv" and confirmed.details["new"] == 3
    assert confirmed.user == manager_user


def test_credential_deleted(owner_client, organization, owner_user):
    credential = CredentialFactory(organization=organization, name="Old app")
    owner_client.post(f"/credentials/{credential.public_id}/delete/")
    assert not Credential.objects.filter(pk=credential.pk).exists()
    (deleted,) = entries(Action.CREDENTIAL_DELETED)
    assert deleted.object_label == "Old app" and deleted.user == owner_user


def test_clearance_requested_again(organization, manager_user, monkeypatch):
    monkeypatch.setattr("clearance.tasks.request_clearances.delay_on_commit", lambda *a, **k: None)
    credential = CredentialFactory(organization=organization)
    vehicle = VehicleFactory(organization=organization)
    ClearanceFactory(vehicle=vehicle, credential=credential, status=ClearanceStatus.REJECTED)
    with acting(person(manager_user)):
        result = fleet_actions.request_clearances(
            Vehicle.objects.filter(pk=vehicle.pk), user=manager_user
        )
    assert result.done == 1
    (again,) = entries(Action.VEHICLE_REONBOARDED)
    assert again.object_label == vehicle.vin and again.user == manager_user


def test_member_joined_by_invitation(organization, owner_user):
    owner = Membership.objects.get(user=owner_user)
    invitation = org_services.invite(
        organization, email="new@example.com", role=Role.VIEWER, by=owner
    )
    newcomer = UserFactory(email="new@example.com")
    org_services.accept(invitation, newcomer)
    (joined,) = entries(Action.MEMBER_JOINED)
    assert joined.object_label == newcomer.username and joined.details["role"] == "viewer"
