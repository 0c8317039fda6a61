"""Retry policy of the tasks, and the clearance_sync command against the simulator."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from clearance.hm import HMServerError, RateLimited
from clearance.services import onboarding, sending
from clearance.work import retry_countdown
from simulator import clock as sim_clock
from tests.clearance.lifecycle_helpers import ordinary_vin, vehicles, wire


def test_backoff_grows_with_jitter_and_is_capped(settings):
    settings.HM_RETRY_BACKOFF_SECONDS = 1
    settings.HM_RETRY_BACKOFF_MAX_SECONDS = 30
    first = [retry_countdown(0, HMServerError()) for _ in range(200)]
    later = [retry_countdown(4, HMServerError()) for _ in range(200)]
    capped = [retry_countdown(20, HMServerError()) for _ in range(200)]
    assert all(0.5 <= d <= 1 for d in first)
    assert all(0.5 <= d <= 16 for d in later) and max(later) > 4
    assert all(d <= 30 for d in capped)
    assert len({round(d, 3) for d in first}) > 50  # jitter


def test_backoff_honours_hm_retry_after(settings):
    settings.HM_RETRY_BACKOFF_SECONDS = 0.1
    delays = [retry_countdown(0, RateLimited(retry_after=10)) for _ in range(50)]
    assert all(10 <= d <= 10.1 for d in delays)


def test_clearance_sync_command(simulator, organization):
    credential, _ = wire(organization, webhooks=False)
    cars = vehicles(organization, [ordinary_vin(1), ordinary_vin(2)], brand="sandbox")
    onboarding.queue_clearance_requests(cars, credential=credential)
    sending.request_clearances(credential.pk)
    sim_clock.advance(timedelta(seconds=30))
    out = StringIO()
    call_command("clearance_sync", f"--org={organization.slug}", stdout=out)
    text = out.getvalue()
    assert "2 change(s)" in text
    assert "pending -> approved: 2" in text
    assert f"{ordinary_vin(1)}: pending -> approved" in text
    out = StringIO()
    call_command("clearance_sync", stdout=out)
    assert "0 change(s)" in out.getvalue()


@pytest.mark.django_db
def test_clearance_sync_unknown_org():
    with pytest.raises(CommandError):
        call_command("clearance_sync", "--org=nope", stdout=StringIO())


@pytest.mark.django_db
def test_request_task_retries_each_row_for_as_long_as_it_takes(settings, monkeypatch):
    """No budget per run: every wake that finds the row due tries it again, with words."""
    from clearance import tasks
    from clearance.models import Clearance, HMWork
    from clearance.services import sending as services
    from tests.factories import ClearanceFactory

    row = ClearanceFactory(status="queued")
    HMWork.objects.create(clearance=row, credential=row.credential, kind="send")

    class Down:
        calls = 0

        def request_clearances(self, requests_):
            Down.calls += 1
            raise HMServerError()

    monkeypatch.setattr(services, "hm_client_for", lambda credential: Down())
    monkeypatch.setattr(tasks.request_clearances, "apply_async", lambda *a, **k: None)
    for attempt in range(1, 13):
        HMWork.objects.update(next_attempt_at=timezone.now(), sending_at=None)
        tasks.request_clearances.apply(args=(row.credential_id,))
        work_row = HMWork.objects.get()
        assert (work_row.state, work_row.attempts) == ("pending", attempt)
    assert Down.calls == 12
    row = Clearance.objects.get(pk=row.pk)
    assert row.status == "queued"
    assert row.last_error.startswith("High Mobility had an internal problem.")
    assert "Next try at" in row.last_error


@pytest.mark.django_db
def test_beat_sync_queues_one_sync_per_credential(monkeypatch):
    from clearance import tasks
    from tests.factories import ClearanceFactory

    first = ClearanceFactory(status="pending")
    ClearanceFactory(
        status="pending",
        credential=first.credential,
        vehicle__organization=first.vehicle.organization,
    )
    second = ClearanceFactory(status="approved")
    synced = []
    monkeypatch.setattr(tasks.sync_credential, "delay_on_commit", synced.append)
    tasks.sync_all_clearances.apply()
    assert sorted(synced) == sorted([first.credential_id, second.credential_id])
