"""A sync after webhooks: HM's changelog must not replay news we already applied.

Webhooks (and POST/DELETE answers) carry no HM time, so ``hm_changed_at`` lags behind the
statuses they set. A sync then sees HM's changelog with times "newer" than anything we know;
replaying it from the last ``pending`` recorded approved -> pending -> approved (and, for
service-account credentials, queued a token revoke next to the re-issue).
"""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from clearance import changelog, state
from clearance.hm import ChangelogEntry, FleetVehicle
from clearance.hm import ClearanceStatus as HMStatus
from clearance.models import Clearance, ClearanceEvent, Credential, HMWork
from clearance.services import sync as sync_service
from clearance.services import webhooks
from clearance.state import Change, Outcome, Source
from tests.clearance.lifecycle_helpers import clearance_payload, post_webhook
from tests.factories import ClearanceFactory

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def hm(minutes: float):
    return T0 + timedelta(minutes=minutes)


def listed(vin: str, status: str, *entries: tuple[str, float]) -> FleetVehicle:
    return FleetVehicle(
        vin=vin,
        status=HMStatus.parse(status),
        changelog=[ChangelogEntry(timestamp=hm(m), status=HMStatus.parse(s)) for s, m in entries],
    )


class FakeHM:
    """Answers the one list call of a sync."""

    def __init__(self, *vehicles: FleetVehicle):
        self.vehicles = list(vehicles)

    def list_clearances(self, filter=None):
        return list(self.vehicles)


@pytest.fixture
def web():
    return Client(enforce_csrf_checks=True)


@pytest.fixture
def clearance():
    """Sent and pending (from the POST answer, undated), on a service-account credential."""
    row = ClearanceFactory(
        status="pending",
        requested_at=timezone.now() - timedelta(hours=1),
        status_known_at=timezone.now() - timedelta(minutes=30),
    )
    Credential.objects.filter(pk=row.credential_id).update(
        auth_mode=Credential.AuthMode.SERVICE_ACCOUNT
    )
    row.credential.refresh_from_db()
    return row


def webhook(web, clearance, *actions: str) -> None:
    """Real HM's body (no time of the change), received, then confirmed by the task with HM,
    which lists the announced status (undated, as a webhook is): one confirmation each."""
    for action in actions:
        post_webhook(web, clearance.credential, clearance_payload(clearance.vehicle.vin, action))
        hm_now = listed(clearance.vehicle.vin, action)
        webhooks.confirm_webhooks(clearance.credential_id, client=FakeHM(hm_now))
    clearance.refresh_from_db()


def sync(clearance, vehicle, queued_tasks, capture) -> list[tuple]:
    queued_tasks.clear()
    with capture(execute=True):
        summary = sync_service.sync_clearances(clearance.credential, client=FakeHM(vehicle))
    clearance.refresh_from_db()
    return summary.changes


def token_work(clearance) -> list[tuple[str, str]]:
    """The clearance's vehicle token work rows (durable work), oldest first."""
    return list(
        HMWork.objects.filter(clearance=clearance, kind__startswith="token_")
        .order_by("pk")
        .values_list("kind", "state")
    )


def moves(clearance) -> list[tuple[str, str, str]]:
    return list(
        ClearanceEvent.objects.filter(clearance=clearance)
        .order_by("pk")
        .values_list("from_status", "to_status", "source")
    )


def test_webhook_approval_is_not_replayed_by_the_next_sync(
    web, clearance, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        webhook(web, clearance, "approved")
    assert clearance.status == "approved"
    assert clearance.hm_changed_at is None  # the webhook gave no HM time
    assert ("vehicle_token_work", clearance.credential_id) in queued_tasks
    assert token_work(clearance) == [("token_issue", "pending")]

    vin = clearance.vehicle.vin
    changes = sync(
        clearance,
        listed(vin, "approved", ("pending", 0), ("approved", 1)),
        queued_tasks,
        django_capture_on_commit_callbacks,
    )
    assert changes == []
    assert moves(clearance) == [("pending", "approved", "webhook")]
    assert queued_tasks == []  # no revoke, no second issue: the token stays
    assert clearance.status == "approved"
    # HM's time of what we already knew is not worth a write (issue 13: the first sync after an
    # onboarding writes only the rows that moved).
    assert clearance.hm_changed_at is None

    # And the next sync has nothing to look at.
    assert (
        sync(
            clearance,
            listed(vin, "approved", ("pending", 0), ("approved", 1)),
            queued_tasks,
            django_capture_on_commit_callbacks,
        )
        == []
    )
    assert len(moves(clearance)) == 1


def test_webhook_approval_after_a_sync_saw_pending(
    web, clearance, queued_tasks, django_capture_on_commit_callbacks
):
    vin = clearance.vehicle.vin
    sync(
        clearance,
        listed(vin, "pending", ("pending", 0)),
        queued_tasks,
        django_capture_on_commit_callbacks,
    )
    assert clearance.hm_changed_at is None  # same status: nothing written
    with django_capture_on_commit_callbacks(execute=True):
        webhook(web, clearance, "approved")
    changes = sync(
        clearance,
        listed(vin, "approved", ("pending", 0), ("approved", 1)),
        queued_tasks,
        django_capture_on_commit_callbacks,
    )
    assert changes == []
    assert queued_tasks == []
    assert moves(clearance) == [("pending", "approved", "webhook")]


def test_webhook_revocation_is_not_replayed_by_the_next_sync(
    web, clearance, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        webhook(web, clearance, "approved", "revoking", "revoked")
    assert clearance.status == "revoked"
    before = moves(clearance)
    assert [(a, b) for a, b, _ in before] == [
        ("pending", "approved"),
        ("approved", "revoking"),
        ("revoking", "revoked"),
    ]

    vin = clearance.vehicle.vin
    changes = sync(
        clearance,
        listed(vin, "revoked", ("pending", 0), ("approved", 1), ("revoking", 2), ("revoked", 3)),
        queued_tasks,
        django_capture_on_commit_callbacks,
    )
    assert changes == []
    assert moves(clearance) == before
    assert queued_tasks == []
    assert clearance.status == "revoked"
    assert clearance.hm_changed_at is None


def test_newer_move_in_hm_changelog_after_a_webhook_is_applied_once(
    web, clearance, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        webhook(web, clearance, "approved")
    vin = clearance.vehicle.vin
    hm_list = listed(
        vin, "revoked", ("pending", 0), ("approved", 1), ("revoking", 2), ("revoked", 3)
    )
    changes = sync(clearance, hm_list, queued_tasks, django_capture_on_commit_callbacks)
    assert [(b, a) for _, b, a in changes] == [("approved", "revoking"), ("revoking", "revoked")]
    assert clearance.status == "revoked"
    assert moves(clearance) == [
        ("pending", "approved", "webhook"),
        ("approved", "revoking", "poll"),
        ("revoking", "revoked", "poll"),
    ]
    events = ClearanceEvent.objects.filter(clearance=clearance, source="poll").order_by("pk")
    assert [e.at for e in events] == [hm(2), hm(3)]
    assert queued_tasks == [("vehicle_token_work", clearance.credential_id)]  # once, no re-issue
    assert ("token_revoke", "pending") in token_work(clearance)

    # The same list again changes nothing.
    assert sync(clearance, hm_list, queued_tasks, django_capture_on_commit_callbacks) == []
    assert len(moves(clearance)) == 3
    assert queued_tasks == []


def test_newer_move_skipping_steps_after_a_webhook(
    web, clearance, queued_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        webhook(web, clearance, "approved")
    vin = clearance.vehicle.vin
    changes = sync(
        clearance,
        listed(vin, "revoked", ("pending", 0), ("approved", 1), ("revoked", 3)),
        queued_tasks,
        django_capture_on_commit_callbacks,
    )
    assert [(b, a) for _, b, a in changes] == [("approved", "revoked")]
    assert queued_tasks == [("vehicle_token_work", clearance.credential_id)]
    assert ("token_revoke", "pending") in token_work(clearance)


def test_sync_started_before_the_webhook_is_still_stale(
    web, clearance, queued_tasks, django_capture_on_commit_callbacks
):
    """Our-clock ordering is kept: news learnt before the current status changes nothing."""
    vin = clearance.vehicle.vin
    with django_capture_on_commit_callbacks(execute=True):
        webhook(web, clearance, "approved", "revoking")
    learned_before = clearance.status_known_at - timedelta(seconds=1)
    vehicle = listed(vin, "approved", ("pending", 0), ("approved", 1))
    changes = changelog.changes_from_hm(clearance, vehicle, learned_at=learned_before)
    result = state.apply_changes([(clearance, c) for c in changes], now=learned_before)
    assert result.applied == 0
    assert clearance.status == "revoking"


def test_status_missing_from_changelog_never_replays_backward():
    """Our status came from the DELETE answer (undated) and HM's changelog does not list it:
    the older steps of the round are not news."""
    row = ClearanceFactory(status="revoking", requested_at=timezone.now() - timedelta(hours=1))
    vehicle = listed(row.vehicle.vin, "revoking", ("pending", 0), ("approved", 1))
    changes = changelog.changes_from_hm(row, vehicle, learned_at=timezone.now())
    result = state.apply_changes([(row, c) for c in changes])
    assert result.moves == []
    assert not ClearanceEvent.objects.filter(clearance=row).exists()
    row.refresh_from_db()
    assert row.status == "revoking"


def test_changelog_replay_starts_at_the_latest_entry_of_our_status():
    row = ClearanceFactory(status="approved", requested_at=timezone.now())
    vehicle = listed(
        row.vehicle.vin,
        "revoked",
        ("pending", 0),
        ("approved", 1),
        ("revoked", 2),
        ("pending", 5),
        ("approved", 6),
        ("revoked", 8),
    )
    changes = changelog.changes_from_hm(row, vehicle, learned_at=timezone.now())
    assert [(c.status, c.at) for c in changes] == [("approved", hm(6)), ("revoked", hm(8))]


@pytest.mark.parametrize(
    ("current", "backward"),
    [
        ("approved", "pending"),
        ("revoked", "revoking"),
        ("revoked", "approved"),
        ("canceled", "canceling"),
        ("revoking", "approved"),
        ("rejected", "pending"),
    ],
)
def test_dated_news_never_moves_backward(current, backward):
    """HM dated it after our last HM time, but our status may have come undated: the graph
    never leads back, so it is not a missed step."""
    row = ClearanceFactory(status=current)
    decision = state.apply_change(row, Change(status=backward, source=Source.POLL, at=hm(5)))
    assert decision.outcome is Outcome.FORBIDDEN
    row.refresh_from_db()
    assert row.status == current
    assert not row.events.exists()


@pytest.mark.parametrize(
    ("current", "forward"),
    [("pending", "revoked"), ("pending", "revoking")],
)
def test_dated_news_may_still_skip_missed_steps_forward(current, forward):
    row = ClearanceFactory(status=current)
    decision = state.apply_change(row, Change(status=forward, source=Source.POLL, at=hm(5)))
    assert decision.outcome is Outcome.APPLIED
    assert "steps in between were missed" in decision.event.detail


def test_hm_still_converges_when_the_graph_has_no_way_there(queued_tasks):
    """A move HM made that the graph never leads to is still taken once, by the forced step."""
    row = ClearanceFactory(
        status="rejected",
        requested_at=timezone.now() - timedelta(hours=1),
        status_known_at=timezone.now() - timedelta(minutes=30),
    )
    vehicle = listed(row.vehicle.vin, "approved", ("pending", 0), ("rejected", 1), ("approved", 4))
    summary = sync_service.sync_clearances(row.credential, client=FakeHM(vehicle))
    row.refresh_from_db()
    assert row.status == "approved"
    assert [(b, a) for _, b, a in summary.changes] == [("rejected", "approved")]
    assert Clearance.objects.get(pk=row.pk).events.count() == 1
