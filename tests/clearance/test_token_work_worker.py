"""Vehicle token work through the real parts: a Celery worker process, the simulator over HTTP.

A token message that never reaches the worker (lost with a broker outage, dropped by a dying
process) leaves its durable row waiting; the reconciler's next round wakes it and the worker
does it: the vehicle gets its token, and a defleet's revocation reaches HM."""

import uuid
from datetime import timedelta

import pytest

from clearance import tasks
from clearance.models import Clearance, Credential, HMWork, VehicleToken
from clearance.services import defleet, onboarding, sync
from durable import work
from simulator import clock as sim_clock
from simulator import services as sim
from simulator.models import IssuedToken
from tests.clearance.lifecycle_helpers import ordinary_vin, statuses, vehicles
from tests.conftest import wait_for
from tests.factories import CredentialFactory, OrganizationFactory

pytestmark = pytest.mark.slow

VIN = ordinary_vin(31)


@pytest.fixture
def worker(transactional_db, celery_worker, live_server):
    sim_clock.reset()
    yield celery_worker
    sim_clock.reset()


def service_account_credential(organization) -> Credential:
    """A service-account credential (legacy vehicle tokens) for a new simulated app."""
    _app, keys = sim.create_app(f"SA {uuid.uuid4().hex[:6]}", approval_delay_seconds=5)
    return CredentialFactory(
        organization=organization,
        environment=Credential.Environment.SIMULATOR,
        auth_mode=Credential.AuthMode.SERVICE_ACCOUNT,
        client_id=keys.client_id,
        client_secret=keys.client_secret,
        service_account_key_id=keys.service_account_key_id,
        private_key=keys.service_account_private_key_pem,
    )


def sim_tokens(**filters):
    return IssuedToken.objects.filter(vin=VIN, kind="vehicle_access", **filters)


def test_a_lost_token_message_is_woken_by_the_reconciler(worker, monkeypatch):
    org = OrganizationFactory()
    credential = service_account_credential(org)
    cars = vehicles(org, [VIN], brand="sandbox")
    onboarding.queue_clearance_requests(cars, credential=credential)
    wait_for(
        lambda: statuses(credential) == {VIN: "pending"},
        message="the worker to send the request",
    )
    sim_clock.advance(timedelta(seconds=6))

    # Every token message of this process is lost from here on.
    lost = []
    monkeypatch.setattr(
        tasks.vehicle_token_work, "delay_on_commit", lambda *args, **kw: lost.append(args)
    )
    sync.sync_clearances(credential)  # the approval writes the token's issue
    clearance = Clearance.objects.get(vehicle__vin=VIN)
    assert clearance.status == "approved"
    assert lost == [(credential.pk,)]
    issue = HMWork.objects.get(clearance=clearance, kind="token_issue")
    assert (issue.state, issue.attempts) == ("pending", 0)
    assert not VehicleToken.objects.exists()

    # The reconciler's round wakes the credential's token worker; the worker issues the token.
    assert work.reconcile()["clearance.tokens"] == 1
    wait_for(
        lambda: VehicleToken.objects.filter(clearance=clearance).exists(),
        message="the worker to issue the vehicle token",
    )
    issue.refresh_from_db()
    assert (issue.state, issue.attempts) == ("done", 1)
    assert sim_tokens(revoked_at__isnull=True).count() == 1
    renewal = HMWork.objects.get(clearance=clearance, kind="token_refresh")
    assert renewal.state == "pending"
    assert renewal.next_attempt_at > clearance.status_changed_at

    # The defleet's revocation message is lost too; the reconciler wakes it, HM revokes.
    (outcome,) = defleet.defleet(cars)
    assert outcome.ok
    assert lost == [(credential.pk,), (credential.pk,)]
    assert HMWork.objects.get(clearance=clearance, kind="token_revoke").state == "pending"
    assert work.reconcile()["clearance.tokens"] == 1
    wait_for(
        lambda: not VehicleToken.objects.exists(),
        message="the worker to revoke the vehicle token",
    )
    wait_for(
        lambda: HMWork.objects.get(clearance=clearance, kind="token_revoke").state == "done",
        message="the revocation to be recorded",
    )
    assert not sim_tokens(revoked_at__isnull=True).exists()
    assert sim_tokens().count() == 1  # issued once, never twice
