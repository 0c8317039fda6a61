"""Vehicle token work as durable rows: claim, retry per row, give up only on refusals.

HM is a fake client here (the real simulator over HTTP is in test_services.py and
test_lifecycle_worker.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clearance import tasks
from clearance.hm import AuthenticationError, HMTimeout, RateLimited, VehicleAccessToken
from clearance.models import Clearance, Credential, HMWork, VehicleToken
from clearance.services import token_work, vehicle_tokens
from durable import work
from tests.factories import ClearanceFactory

pytestmark = pytest.mark.django_db

K = HMWork.Kind


class FakeHM:
    """Answers token calls from a script: an exception to raise, or a fresh token."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, list[Exception]] = {}
        self.failing_vins: dict[str, Exception] = {}  # issue fails for these, every time
        self.issued = 0

    def _maybe_fail(self, what: str) -> None:
        if self.fail.get(what):
            raise self.fail[what].pop(0)

    def _token(self) -> VehicleAccessToken:
        self.issued += 1
        return VehicleAccessToken(
            access_token=f"access-{self.issued}",
            refresh_token=f"refresh-{self.issued}",
            expires_at=timezone.now() + timedelta(hours=1),
            scope="vehicle:data",
        )

    def issue_vehicle_token(self, vin):
        self.calls.append(("issue", vin))
        if vin in self.failing_vins:
            raise self.failing_vins[vin]
        self._maybe_fail("issue")
        return self._token()

    def refresh_vehicle_token(self, refresh_token):
        self.calls.append(("refresh", refresh_token))
        self._maybe_fail("refresh")
        return self._token()

    def revoke_token(self, token, token_type_hint="refresh_token"):
        self.calls.append(("revoke", token))
        self._maybe_fail("revoke")


@pytest.fixture
def hm(monkeypatch):
    fake = FakeHM()
    monkeypatch.setattr(token_work, "hm_client_for", lambda credential: fake)
    monkeypatch.setattr(vehicle_tokens, "hm_client_for", lambda credential: fake)
    return fake


def approved(**fields) -> Clearance:
    clearance = ClearanceFactory(status="approved", **fields)
    Credential.objects.filter(pk=clearance.credential_id).update(
        auth_mode=Credential.AuthMode.SERVICE_ACCOUNT
    )
    clearance.refresh_from_db()
    return clearance


def owe(kind: str, *clearances: Clearance) -> None:
    token_work.queue(kind, [(c.pk, c.credential_id) for c in clearances])


def row(clearance: Clearance, kind: str) -> HMWork:
    return HMWork.objects.filter(clearance=clearance, kind=kind).latest("pk")


def store_token(clearance: Clearance, **fields) -> VehicleToken:
    defaults = {
        "access_token": "old-access",
        "refresh_token": "old-refresh",
        "expires_at": timezone.now() + timedelta(minutes=5),
    }
    return VehicleToken.objects.create(clearance=clearance, **{**defaults, **fields})


def test_approval_writes_the_issue_in_its_transaction_and_wakes_the_worker(
    queued_tasks, django_capture_on_commit_callbacks
):
    clearance = approved()
    credential = clearance.credential
    with django_capture_on_commit_callbacks(execute=True):
        token_work.after_moves(credential, [(clearance, "pending", "approved")])
        token_work.after_moves(credential, [(clearance, "pending", "approved")])  # a repeat
    assert list(HMWork.objects.values_list("kind", "state")) == [("token_issue", "pending")]
    assert queued_tasks == [("vehicle_token_work", credential.pk)] * 2
    # Client-secret credentials have no legacy tokens: nothing is owed.
    Credential.objects.filter(pk=credential.pk).update(auth_mode="client_secret")
    credential.refresh_from_db()
    token_work.after_moves(credential, [(clearance, "approved", "revoking")])
    assert not HMWork.objects.filter(kind=K.TOKEN_REVOKE).exists()


def test_a_rate_limited_issue_waits_for_retry_after_and_says_when(hm, queued_tasks):
    clearance = approved()
    owe(K.TOKEN_ISSUE, clearance)
    hm.fail["issue"] = [RateLimited(retry_after=40)]
    started = timezone.now()
    assert token_work.token_work_due(clearance.credential_id) == (1, False)
    issue = row(clearance, K.TOKEN_ISSUE)
    assert (issue.state, issue.attempts) == ("pending", 1)
    assert issue.next_attempt_at >= started + timedelta(seconds=40)
    assert issue.last_error
    clearance.refresh_from_db()
    assert clearance.last_error.startswith("Could not get the vehicle's access token:")
    assert "Next try at" in clearance.last_error
    # Not due yet: a waker finds nothing to claim.
    assert token_work.token_work_due(clearance.credential_id) == (0, False)
    # Due: issued; the words go, the renewal is scheduled with the token.
    HMWork.objects.filter(pk=issue.pk).update(next_attempt_at=timezone.now())
    assert token_work.token_work_due(clearance.credential_id) == (1, False)
    assert row(clearance, K.TOKEN_ISSUE).state == "done"
    token = VehicleToken.objects.get(clearance=clearance)
    assert token.access_token == "access-1"
    clearance.refresh_from_db()
    assert clearance.last_error == ""
    renewal = row(clearance, K.TOKEN_REFRESH)
    assert renewal.state == "pending"
    assert renewal.next_attempt_at == vehicle_tokens.refresh_due_at(token.expires_at)


def test_retries_are_per_row_never_a_shared_budget(hm, queued_tasks, settings):
    settings.DURABLE_RETRY_BASE_SECONDS = 5
    settings.DURABLE_RETRY_MAX_SECONDS = 600
    failing, fine = approved(), approved()
    Clearance.objects.filter(pk=fine.pk).update(credential=failing.credential)
    fine.refresh_from_db()
    owe(K.TOKEN_ISSUE, failing, fine)
    hm.failing_vins[failing.vehicle.vin] = HMTimeout()
    for _ in range(30):  # far past any old retry budget
        HMWork.objects.filter(pk=row(failing, K.TOKEN_ISSUE).pk).update(
            next_attempt_at=timezone.now()
        )
        started = timezone.now()
        token_work.token_work_due(failing.credential_id)
    assert VehicleToken.objects.filter(clearance=fine).exists()
    assert row(fine, K.TOKEN_ISSUE).state == "done"
    issue = row(failing, K.TOKEN_ISSUE)
    assert (issue.state, issue.attempts) == ("pending", 30)
    # The backoff grew with the row's own attempts up to the cap (full jitter: half to all).
    assert issue.next_attempt_at >= started + timedelta(seconds=300)


def test_a_refused_issue_gives_up_in_words(hm, queued_tasks):
    clearance = approved()
    owe(K.TOKEN_ISSUE, clearance)
    hm.fail["issue"] = [AuthenticationError("The service account key was revoked.")]
    assert token_work.token_work_due(clearance.credential_id) == (1, False)
    issue = row(clearance, K.TOKEN_ISSUE)
    assert issue.state == "failed"
    assert issue.last_error == (
        "Could not get the vehicle's access token: The service account key was revoked."
    )
    clearance.refresh_from_db()
    assert clearance.last_error == issue.last_error
    assert not work.due(HMWork.objects.all()).exists()  # never tried again by itself


def test_issue_is_idempotent_and_skips_vehicles_no_longer_owed_a_token(hm, queued_tasks):
    has_one, revoked = approved(), approved()
    store_token(has_one)
    Clearance.objects.filter(pk=revoked.pk).update(status="revoked")
    owe(K.TOKEN_ISSUE, has_one, revoked)
    token_work.token_work_due(has_one.credential_id)
    token_work.token_work_due(revoked.credential_id)
    assert hm.calls == []
    assert set(HMWork.objects.values_list("state", flat=True)) == {"done"}


def test_a_revoke_retries_transient_errors_and_keeps_the_token_meanwhile(hm, queued_tasks):
    clearance = approved()
    store_token(clearance)
    Clearance.objects.filter(pk=clearance.pk).update(status="revoking")
    token_work.revoke_later([clearance])
    hm.fail["revoke"] = [HMTimeout()]
    token_work.token_work_due(clearance.credential_id)
    revoke = row(clearance, K.TOKEN_REVOKE)
    assert (revoke.state, revoke.attempts) == ("pending", 1)
    assert VehicleToken.objects.filter(clearance=clearance).exists()
    HMWork.objects.filter(pk=revoke.pk).update(next_attempt_at=timezone.now())
    token_work.token_work_due(clearance.credential_id)
    assert row(clearance, K.TOKEN_REVOKE).state == "done"
    assert not VehicleToken.objects.exists()
    assert hm.calls == [("revoke", "old-refresh"), ("revoke", "old-refresh")]


def test_a_refused_revoke_drops_the_token_and_says_why_on_the_row(hm, queued_tasks):
    clearance = approved()
    store_token(clearance)
    token_work.revoke_later([clearance])
    Clearance.objects.filter(pk=clearance.pk).update(status="revoked")
    hm.fail["revoke"] = [AuthenticationError("Unknown token.")]
    token_work.token_work_due(clearance.credential_id)
    revoke = row(clearance, K.TOKEN_REVOKE)
    assert revoke.state == "failed"
    assert "refused to revoke" in revoke.last_error and "Unknown token." in revoke.last_error
    assert not VehicleToken.objects.exists()


def test_a_vehicle_approved_again_before_its_revoke_gets_a_fresh_token(hm, queued_tasks):
    clearance = approved()
    store_token(clearance)
    token_work.revoke_later([clearance])
    owe(K.TOKEN_ISSUE, clearance)  # approved again: the old token still stands
    token_work.token_work_due(clearance.credential_id)
    assert VehicleToken.objects.get(clearance=clearance).access_token == "access-1"
    assert [c for c, _ in hm.calls] == ["revoke", "issue"]


def test_a_refused_renewal_drops_the_token_and_issues_a_new_one(hm, queued_tasks):
    clearance = approved()
    store_token(clearance)
    token_work.schedule_missing_renewals()  # a token stored before renewals were rows
    renewal = row(clearance, K.TOKEN_REFRESH)
    assert renewal.state == "pending"
    hm.fail["refresh"] = [AuthenticationError("The refresh token was revoked.")]
    token_work.token_work_due(clearance.credential_id)
    renewal.refresh_from_db()
    assert renewal.state == "failed"
    assert "The refresh token was revoked." in renewal.last_error
    # Still approved: a new token is issued (the next row of the same batch) and renewed later.
    assert VehicleToken.objects.get(clearance=clearance).access_token == "access-1"
    assert row(clearance, K.TOKEN_ISSUE).state == "done"
    assert row(clearance, K.TOKEN_REFRESH).state == "pending"


def test_a_renewal_reschedules_its_own_row_for_the_next_expiry(hm, queued_tasks):
    clearance = approved()
    store_token(clearance)
    token_work.schedule_missing_renewals()
    assert token_work.schedule_missing_renewals() == 0  # already scheduled
    assert HMWork.objects.filter(kind=K.TOKEN_REFRESH).count() == 1
    token_work.token_work_due(clearance.credential_id)
    token = VehicleToken.objects.get()
    renewal = row(clearance, K.TOKEN_REFRESH)
    assert (token.access_token, token.refresh_token) == ("access-1", "refresh-1")
    assert (renewal.state, renewal.attempts) == ("pending", 0)
    assert renewal.next_attempt_at == vehicle_tokens.refresh_due_at(token.expires_at)
    assert HMWork.objects.filter(kind=K.TOKEN_REFRESH).count() == 1


def test_a_worker_asked_to_stop_hands_the_rest_back(hm, queued_tasks):
    rows = [approved() for _ in range(3)]
    Clearance.objects.update(credential=rows[0].credential)
    owe(K.TOKEN_ISSUE, *Clearance.objects.all())
    asked = iter([False, True])
    done, more = token_work.token_work_due(rows[0].credential_id, stop=lambda: next(asked))
    assert (done, more) == (1, True)
    issues = HMWork.objects.filter(kind=K.TOKEN_ISSUE)
    assert sorted(issues.values_list("state", flat=True)) == ["done", "pending", "pending"]
    assert not issues.filter(state="running").exists()


def test_a_claimed_row_waits_for_its_lease_then_is_due_again(hm, queued_tasks):
    clearance = approved()
    owe(K.TOKEN_ISSUE, clearance)
    # A worker claimed it and died mid-call.
    (claimed,) = work.claim(
        token_work.token_work(clearance.credential_id), limit=1, lease_seconds=60
    )
    assert token_work.token_work_due(clearance.credential_id) == (0, False)
    HMWork.objects.filter(pk=claimed.pk).update(next_attempt_at=timezone.now())
    assert token_work.token_work_due(clearance.credential_id) == (1, False)
    assert row(clearance, K.TOKEN_ISSUE).attempts == 2


def test_messages_queued_before_token_work_was_durable_become_rows(
    queued_tasks, django_capture_on_commit_callbacks
):
    clearance = approved()
    token = store_token(clearance)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.issue_vehicle_tokens.run([clearance.pk])
        tasks.refresh_vehicle_token.run(token.pk)
        tasks.revoke_vehicle_tokens.run([clearance.pk])
    assert sorted(HMWork.objects.values_list("kind", flat=True)) == [
        "token_issue",
        "token_refresh",
        "token_revoke",
    ]
    assert set(queued_tasks) == {("vehicle_token_work", clearance.credential_id)}
