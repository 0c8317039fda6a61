"""Benchmark: alert rules over a whole fleet, and a rejection's way to the customer's receiver.

    python bench/notifications.py [--vehicles 1000,10000] [--rules 5] [--members 3] [--rounds 10]

1. The periodic evaluation (``evaluate_time_rules``, what beat runs every
   ALERT_EVALUATION_INTERVAL_SECONDS) over one organization of N vehicles (and a second one of
   the same size, so scoping is exercised) with 5 time-based rules (pending too long, silent,
   two of them for a tag): its DB queries and time on the first run (alerts fire: notifications
   for every member, emails, rows written) and on the next run (nothing new). The ceiling is
   what merely counting the same rows costs: one plain SQL COUNT per rule over the fleet's
   vehicles and clearances, timed in the same run.
2. The delay from a rejection at the simulated HM to the webhook arriving at a local receiver:
   the portal in gunicorn (the simulator with it), one Celery worker process, a receiver on
   loopback. Each round re-onboards the seed VIN the simulator rejects, moves the simulator's
   clock past its decision and notes the time; the rejection travels as HM's signed webhook to
   the portal, is applied by the worker, fires the rule, and the ``alert.fired`` event is signed
   and POSTed to the receiver. Printed per stage: HM webhook received, alert fired, delivered.
   Goal: under 3 s.

Uses the configured database (DATABASE_URL, else SQLite) through a throwaway database, and the
configured broker and cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lifecycle import gunicorn, setup_django, teardown

SEED_REJECTED_VIN = "2HM00000000000001"  # rejected without the odometer control measure
GOAL_SECONDS = 3.0


# --- 1. the periodic evaluation -------------------------------------------------------------------


def fleet(name: str, n: int, members: int):
    """An organization of n vehicles: a third pending (half of them for 12 days), the rest
    approved (a quarter silent for 2 days); a tag on every other vehicle."""
    from django.utils import timezone

    from clearance.models import Clearance, Credential
    from organizations.models import Membership, Organization, Role
    from tests.factories import UserFactory
    from vehicles.models import Vehicle

    now = timezone.now()
    org = Organization.objects.create(name=name, slug=f"bench-{uuid.uuid4().hex[:8]}")
    for i in range(members):
        user = UserFactory(username=f"{org.slug}-{i}")
        Membership.objects.create(user=user, organization=org, role=Role.MANAGER)
    credential = Credential.objects.create(
        organization=org, name="Bench", environment="simulator", client_id="x", client_secret="x"
    )
    cars = Vehicle.objects.bulk_create(
        [
            Vehicle(
                organization=org,
                vin=f"WVWZZZ{org.pk:03d}{i:08d}"[:17],
                brand="volkswagen",
                tags={"depot": "berlin"} if i % 2 else {"vans": ""},
                last_seen_at=now - (timedelta(days=2) if i % 4 == 1 else timedelta(minutes=5)),
            )
            for i in range(n)
        ],
        batch_size=2000,
    )
    rows = []
    for i, car in enumerate(cars):
        pending = i % 3 == 0
        since = now - (timedelta(days=12) if pending and i % 2 else timedelta(days=1))
        rows.append(
            Clearance(
                vehicle=car,
                credential=credential,
                status="pending" if pending else "approved",
                status_changed_at=since,
                requested_at=since,
            )
        )
    Clearance.objects.bulk_create(rows, batch_size=2000)
    return org


def rules(org, count: int):
    from notifications.models import AlertRule, RuleKind

    specs = [
        ("Pending over 10 days", RuleKind.PENDING_TOO_LONG, 10, "", ""),
        ("Silent 6 hours", RuleKind.SILENT, 6, "", ""),
        ("Berlin pending 3 days", RuleKind.PENDING_TOO_LONG, 3, "depot", "berlin"),
        ("Vans silent a day", RuleKind.SILENT, 24, "vans", ""),
        ("Silent 30 hours", RuleKind.SILENT, 30, "", ""),
    ]
    for name, kind, threshold, key, value in (specs * 2)[:count]:
        AlertRule.objects.create(
            organization=org,
            name=f"{name} {uuid.uuid4().hex[:4]}",
            kind=kind,
            threshold=threshold,
            tag_key=key,
            tag_value=value,
        )


def timed(function):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        result = function()
        seconds = time.perf_counter() - started
    return result, seconds, len(captured)


def analyze() -> None:
    """Table statistics as a running database has them (autovacuum): fresh tables have none,
    and the planner then guesses badly."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def ceiling(org, rule_count: int) -> float:
    """One plain COUNT per rule over the fleet's vehicles and clearances (no ORM, no writes)."""
    from django.db import connection

    sql = (
        "SELECT COUNT(*) FROM vehicles_vehicle v "
        "JOIN clearance_clearance c ON c.vehicle_id = v.id "
        "WHERE v.organization_id = %s AND c.status IN ('pending', 'approved')"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for _ in range(rule_count):
            cursor.execute(sql, [org.pk])
            cursor.fetchone()
    return time.perf_counter() - started


def evaluation(n: int, rule_count: int, members: int) -> dict:
    from notifications import evaluation as periodic
    from notifications.models import Alert, AlertRule, Notification, OutgoingEmail

    AlertRule.objects.update(enabled=False)  # the rules of the sizes measured before

    org = fleet(f"Alerts bench {n}", n, members)
    fleet(f"Other fleet {n}", n, members)  # its vehicles are scanned by no rule of org
    rules(org, rule_count)
    analyze()
    first, first_s, first_q = timed(periodic.evaluate_time_rules)
    again, again_s, again_q = timed(periodic.evaluate_time_rules)
    return {
        "n": n,
        "rules": rule_count,
        "fired": first.fired,
        "first_s": first_s,
        "first_q": first_q,
        "again_fired": again.fired,
        "again_s": again_s,
        "again_q": again_q,
        "ceiling_s": ceiling(org, rule_count),
        "alerts": Alert.objects.filter(organization=org).count(),
        "notifications": Notification.objects.filter(organization=org).count(),
        "emails": OutgoingEmail.objects.filter(organization=org).count(),
    }


# --- 2. rejection -> webhook ----------------------------------------------------------------------


def latency(rounds: int, workers: int) -> dict:
    from django.conf import settings

    from clearance.models import Clearance, Credential, WebhookDelivery
    from clearance.services import onboarding
    from notifications import outgoing, signing
    from notifications.models import Alert, AlertRule, RuleKind, WebhookEndpoint
    from organizations.models import Organization
    from simulator import clock as sim_clock
    from simulator import services as sim
    from simulator import webhooks as sim_webhooks
    from tests.notifications.receiver import start_receiver
    from tests.support.worker import purge_broker, start_worker
    from vehicles.models import Vehicle

    receiver = start_receiver()
    org = Organization.objects.create(name="Latency bench", slug="bench-latency")
    AlertRule.objects.create(organization=org, name="Rejected", kind=RuleKind.CLEARANCE_REJECTED)
    endpoint = WebhookEndpoint.objects.create(
        organization=org,
        url=receiver.url(),
        event_types=[outgoing.ALERT_FIRED],
        secret=signing.new_secret(),
    )
    car = Vehicle.objects.create(organization=org, vin=SEED_REJECTED_VIN, brand="sandbox")
    sim_clock.reset()
    purge_broker()
    samples = []
    with gunicorn(workers=workers, extra_env={"LOG_LEVEL": "ERROR"}) as url:
        settings.SITE_URL = url
        settings.HM_SIMULATOR_BASE_URL = f"{url}/simulator"
        app, secrets = sim.create_app("Latency bench", approval_delay_seconds=5)
        credential = Credential.objects.create(
            organization=org,
            name="Simulator",
            environment="simulator",
            client_id=secrets.client_id,
            client_secret=secrets.client_secret,
            webhook_secret=uuid.uuid4().hex,
        )
        sim.set_webhook(
            app, f"{url}/webhooks/high-mobility/{credential.public_id}/", credential.webhook_secret
        )
        worker = start_worker(
            loglevel="WARNING",
            SITE_URL=url,
            HM_SIMULATOR_BASE_URL=f"{url}/simulator",
            LOG_LEVEL="ERROR",
        )
        try:
            for round_ in range(rounds):
                if round_ == 0:
                    onboarding.queue_clearance_requests([car], credential=credential)
                else:
                    onboarding.reonboard([car], credential=credential)
                wait(lambda: status(car) == "pending", "the request")
                seen = len(receiver.received)
                sim_clock.advance(timedelta(seconds=10))
                started = time.time()
                sim_webhooks.detect_changes()  # HM decides: rejected; its webhook leaves now
                (got,) = receiver.wait_for(seen + 1, timeout=60)[seen:]
                body = json.loads(got.body)
                assert body["data"]["vehicle"]["vin"] == SEED_REJECTED_VIN
                assert signing.verify(endpoint.secret, got.body, got.header(signing.HEADER))
                hook = (
                    WebhookDelivery.objects.filter(payload__event__action="rejected")
                    .order_by("-received_at")
                    .first()
                )
                alert = Alert.objects.order_by("-pk").first()
                samples.append(
                    {
                        "received": hook.received_at.timestamp() - started,
                        "fired": alert.fired_at.timestamp() - started,
                        "delivered": got.at - started,
                    }
                )
                wait(lambda: status(car) == "rejected", "the rejection")
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
            receiver.close()
            sim_clock.reset()
    return {"samples": samples, "clearance": Clearance.objects.get(vehicle=car).status}


def status(car) -> str:
    from clearance.models import Clearance

    return Clearance.objects.filter(vehicle=car).values_list("status", flat=True).first() or ""


def wait(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"notifications bench: timed out waiting for {what}")
        time.sleep(0.05)


# --- report ---------------------------------------------------------------------------------------


def report(evaluations: list[dict], delays: dict, vendor: str, members: int) -> None:
    print(
        f"\nNotifications benchmark: {vendor}, {os.cpu_count()} CPUs "
        f"(load {os.getloadavg()[0]:.1f}), {members} members per organization"
    )
    print("\nPeriodic evaluation of the time-based rules (one organization, its whole fleet)")
    header = (
        f"{'vehicles':>9} {'rules':>5} {'run':<6} {'fired':>6} {'queries':>7} {'ms':>8} "
        f"{'ceiling ms':>10} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for e in evaluations:
        for run, fired, seconds, queries in (
            ("first", e["fired"], e["first_s"], e["first_q"]),
            ("again", e["again_fired"], e["again_s"], e["again_q"]),
        ):
            print(
                f"{e['n']:>9,} {e['rules']:>5} {run:<6} {fired:>6,} {queries:>7} "
                f"{seconds * 1000:>8.0f} {e['ceiling_s'] * 1000:>10.1f} "
                f"{seconds / e['ceiling_s']:>6.1f}"
            )
        print(
            f"{'':>9} first run wrote {e['alerts']:,} alerts, {e['notifications']:,} "
            f"notifications, {e['emails']} emails"
        )
        ok &= e["again_fired"] == 0
    queries = {(e["first_q"], e["again_q"]) for e in evaluations}
    if len(queries) == 1:
        print("queries do not grow with the fleet: the same count for every size")
    else:
        print("queries per size differ:", sorted(queries))
    samples = delays["samples"]
    if not samples:
        return
    print(f"\nRejection at HM -> webhook at the receiver ({len(samples)} rounds)")
    print(f"{'stage (s after HM decided)':<34}{'median':>8}{'p90':>8}{'max':>8}")
    print("-" * 58)
    for stage, words in (
        ("received", "HM's webhook received by the portal"),
        ("fired", "alert fired (applied by the worker)"),
        ("delivered", "alert.fired at the receiver"),
    ):
        values = sorted(s[stage] for s in samples)
        p90 = values[max(0, int(len(values) * 0.9) - 1)]
        print(f"{words:<34}{statistics.median(values):>8.2f}{p90:>8.2f}{values[-1]:>8.2f}")
    worst = max(s["delivered"] for s in samples)
    verdict = "under" if worst < GOAL_SECONDS else "OVER"
    print(f"goal: every delivery under {GOAL_SECONDS:g} s after HM decided: {verdict}")
    if not ok:
        raise SystemExit("notifications bench: the second run fired again")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vehicles", default="1000,10000", help="fleet sizes, comma-separated")
    parser.add_argument("--rules", type=int, default=5)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10, help="rejections timed")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args()
    old = setup_django("bench_notifications")
    from django.db import connection

    try:
        sizes = [int(size) for size in args.vehicles.split(",") if size.strip()]
        evaluations = [evaluation(n, args.rules, args.members) for n in sizes]
        delays = latency(args.rounds, args.workers) if args.rounds else {"samples": []}
    finally:
        teardown(old)
    report(evaluations, delays, connection.vendor, args.members)


if __name__ == "__main__":
    main()
