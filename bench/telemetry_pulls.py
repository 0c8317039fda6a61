"""Benchmark: the telemetry pull schedule at fleet scale: broker messages and the spread.

    python bench/telemetry_pulls.py [--vehicles 10000] [--interval 300] [--wakers 2]

N approved vehicles (one organization, one credential). Beat's sync writes the schedule (timed,
then timed again with nothing to change); then one and a half pull intervals are played on a
simulated clock in steps of 5 s: the reconciler every 30 s, every waker message delivered when
due, HM answering at once (the pull's HTTP call and snapshot are left out: this measures the
scheduling, not HM). Printed: the most messages that were ever in the broker at once, messages
sent in all, pulls done, the most and fewest pulls in one 30 s window, the claim-and-record cost
per pull. The old beat job queued one message per approved vehicle at once (N, by construction).

Uses the configured database (DATABASE_URL, else SQLite) through a throwaway database.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lifecycle import setup_django, teardown

STEP_SECONDS = 5
RECONCILE_SECONDS = 30


def fleet(n: int) -> None:
    from clearance.models import Clearance, Credential
    from organizations.models import Organization
    from vehicles.models import Vehicle

    org = Organization.objects.create(name="Pulls", slug=f"bench-{uuid.uuid4().hex[:8]}")
    credential = Credential.objects.create(
        organization=org, name="Bench", environment="simulator", client_id="x", client_secret="x"
    )
    cars = Vehicle.objects.bulk_create(
        [Vehicle(organization=org, vin=f"WVWZZZ{i:011d}", brand="volkswagen") for i in range(n)],
        batch_size=2000,
    )
    Clearance.objects.bulk_create(
        [Clearance(vehicle=car, credential=credential, status="approved") for car in cars],
        batch_size=2000,
    )


def play(n: int, interval: int) -> dict:
    import time_machine
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from durable import work
    from telemetry import pull, schedule, tasks

    settings.RECONCILE_INTERVAL_SECONDS = RECONCILE_SECONDS
    messages: list[tuple] = []
    figures = {"most": 0, "sent": 0}

    def keep(args=(), kwargs=None, countdown=None, **options):
        messages.append((timezone.now() + timedelta(seconds=countdown or 0), tuple(args)))
        figures["sent"] += 1
        figures["most"] = max(figures["most"], len(messages))

    tasks.pull_due_telemetry.apply_async = keep  # type: ignore[method-assign]
    pulled: list[int] = []
    pull.fetch = lambda vehicle_id: (  # type: ignore[assignment]
        pulled.append(vehicle_id) or pull.PullOutcome(True, "Received 12 values.")
    )
    started = time.perf_counter()
    added, _ = tasks.pull_approved_vehicles.run()  # beat: the sync (and a nudge of lane 0)
    first_sync = time.perf_counter() - started
    started = time.perf_counter()
    schedule.sync_schedule()
    again_sync = time.perf_counter() - started
    per_window: list[int] = []
    busy = 0.0
    queries = 0
    with time_machine.travel(timezone.now(), tick=False) as clock:
        for step in range(int(1.5 * interval / STEP_SECONDS) + 1):
            if step % (RECONCILE_SECONDS // STEP_SECONDS) == 0:
                per_window.append(len(pulled))
                tasks.pull_approved_vehicles.run()
                work.reconcile()
            began = time.perf_counter()
            connection.queries_log.clear()  # the log keeps 9,000 queries; a step makes fewer
            with CaptureQueriesContext(connection) as captured:
                while due := [m for m in messages if m[0] <= timezone.now()]:
                    messages.remove(due[0])
                    tasks.pull_due_telemetry.run(*due[0][1])
            busy += time.perf_counter() - began
            queries += len(captured)
            clock.shift(STEP_SECONDS)
    windows = [b - a for a, b in itertools.pairwise(per_window)]
    return {
        "n": n,
        "added": added,
        "first_sync_s": first_sync,
        "again_sync_s": again_sync,
        "most": figures["most"],
        "sent": figures["sent"],
        "pulls": len(pulled),
        "distinct": len(set(pulled)),
        "window_max": max(windows),
        "window_min": min(windows[1:-1] or windows),
        "ms_per_pull": busy * 1000 / max(len(pulled), 1),
        "queries_per_pull": queries / max(len(pulled), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--interval", type=int, default=300, help="pull interval (s)")
    parser.add_argument("--wakers", type=int, default=2, help="TELEMETRY_PULL_WAKERS")
    args = parser.parse_args()
    old = setup_django("bench_telemetry_pulls")
    from django.conf import settings
    from django.db import connection

    settings.TELEMETRY_PULL_INTERVAL_SECONDS = args.interval
    settings.TELEMETRY_PULL_WAKERS = args.wakers
    try:
        fleet(args.vehicles)
        r = play(args.vehicles, args.interval)
    finally:
        teardown(old)
    print(
        f"Telemetry pull schedule on {connection.vendor}: {r['n']:,} approved vehicles, "
        f"interval {args.interval} s, {args.wakers} wakers"
    )
    print(f"  schedule sync, first (adds {r['added']:,} rows) {r['first_sync_s'] * 1000:8.0f} ms")
    print(f"  schedule sync, nothing to change           {r['again_sync_s'] * 1000:8.0f} ms")
    print(
        f"  most messages in the broker at once        {r['most']:8,}   (old beat job: {r['n']:,})"
    )
    print(f"  messages sent over 1.5 intervals           {r['sent']:8,}")
    print(f"  pulls over 1.5 intervals (vehicles)        {r['pulls']:8,}   ({r['distinct']:,})")
    print(
        f"  pulls per 30 s window, most / fewest       {r['window_max']:8,} / {r['window_min']:,}"
    )
    print(
        f"  claim + record per pull (no HM call)       {r['ms_per_pull']:8.2f} ms, "
        f"{r['queries_per_pull']:.1f} queries"
    )
    if r["distinct"] != r["n"] or r["most"] > args.wakers:
        raise SystemExit("telemetry pulls bench: a vehicle was not pulled or the broker overflowed")


if __name__ == "__main__":
    main()
