"""Benchmark: a burst of 5,000 signed HM webhooks against gunicorn on loopback, beside its ceilings.

    python bench/webhooks.py [--webhooks 5000] [--clients 8] [--workers 2] [--conn-max-age 60]
                             [--stored 0]

The portal runs in gunicorn (``--workers`` processes x 4 threads) with production's connection
settings (``CONN_MAX_AGE`` 60 s and health checks on, as settings.py, which the webhook receiver
skips for a retry on a new connection; ``--conn-max-age 0`` for a new connection per request),
and one Celery worker process (4 threads) confirms the deliveries with HM (the simulator, served
by the same gunicorn) on a throwaway database and the configured broker. ``--stored N`` first
stores N confirmed deliveries of earlier days: the confirmation's cost must not grow with them.
The vehicles are pending here and approved at HM, so each webhook's confirmation approves one.
``--clients`` threads POST ``fleet_clearance_changed`` (approved) for as many vehicles, each
signed and with its own X-HM-Delivery id; then 10 % of them again (same ids: stored once) and 100
forged ones (401).

Printed: the receive rate (no worker running yet) beside three ceilings measured in the same
gunicorn right after (the same POSTs to a view doing one query, to one storing the body with one
INSERT, and to a bare WSGI answer, bench/ceiling_wsgi.py) with the ratios; then the worker's start, and the time until every vehicle
was confirmed with HM and approved; how many confirmation tasks
and HM list calls that took; and the checks: every delivery stored once, every vehicle approved
with one event.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lifecycle import gunicorn, pending_fleet_hm_has, setup_django, teardown


def run(n: int, clients: int, workers: int, conn_max_age: int, stored: int) -> dict:
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from clearance.models import Clearance, ClearanceEvent, WebhookDelivery
    from organizations.models import Organization
    from simulator import clock as sim_clock
    from simulator import services as sim
    from tests.support.worker import purge_broker, start_worker

    sim_clock.reset()
    app, secrets = sim.create_app("Webhook bench", approval_delay_seconds=5)
    org = Organization.objects.create(name="Webhook bench", slug="bench-webhooks")
    vins = [f"2HMHOOK{i:010d}" for i in range(n)]
    # HM has them all and approves them: each webhook's confirmation finds "approved".
    credential, secret, _ = pending_fleet_hm_has(org, "Bench", vins, app=app, secrets=secrets)
    past = timezone.now() - timedelta(hours=1)  # before any delivery of this run
    sim_clock.advance(timedelta(seconds=30))
    store_history(credential, stored)
    from django.db import connection

    with connection.cursor() as cursor:  # the one-INSERT ceiling's table (ceiling_wsgi.py)
        cursor.execute("CREATE TABLE bench_ceiling (id bigserial PRIMARY KEY, body jsonb)")

    def message(vin: str, delivery: str, *, forged: bool = False):
        body = json.dumps({"vehicle": {"vin": vin}, "event": {"action": "approved"}}).encode()
        key = b"forged" if forged else secret.encode()
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-HM-Delivery": delivery,
            "X-HM-Event": "fleet_clearance_changed",
            "X-HM-Signature-256": signature,
            "User-Agent": "HM-Webhook/1.2.0",
        }
        return body, headers

    deliveries = [str(uuid.uuid4()) for _ in vins]
    purge_broker()
    env = {"LOG_LEVEL": "ERROR", "DATABASE_CONN_MAX_AGE": str(conn_max_age)}
    with gunicorn(workers=workers, extra_env=env, app="bench.ceiling_wsgi:application") as url:
        worker = None
        try:
            parts = urlsplit(url)
            local = threading.local()

            def post(path: str, item):
                # http.client with one keep-alive connection per thread: a light client, so the
                # measured rate is the server's, not the benchmark's own CPU.
                vin, delivery, forged = item
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = local.conn = http.client.HTTPConnection(
                        parts.hostname, parts.port, timeout=30
                    )
                body, headers = message(vin, delivery, forged=forged)
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.HTTPException, OSError):
                    conn.close()
                    local.conn = None
                    raise
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    local.conn = None
                return response.status, json.loads(data or b"{}").get("duplicate")

            def burst(path: str, items) -> tuple[float, list]:
                started = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    answers = list(pool.map(lambda item: post(path, item), items))
                return time.perf_counter() - started, answers

            endpoint = f"/webhooks/high-mobility/{credential.public_id}/"
            items = [(vin, d, False) for vin, d in zip(vins, deliveries, strict=True)]
            # Receiving alone (no worker yet: its confirmations would share this machine's CPU
            # and gunicorn's threads with the burst, and the ceilings below have no worker).
            burst_seconds, answers = burst(endpoint, items)
            repeats = items[: max(1, n // 10)]
            forged = [(vin, str(uuid.uuid4()), True) for vin in vins[:100]]
            _, repeat_answers = burst(endpoint, repeats)
            _, forged_answers = burst(endpoint, forged)
            # The ceilings, in the same gunicorn, same clients, same bodies, right after.
            one_query_seconds, one_query_answers = burst("/bench/one-query/", items)
            one_insert_seconds, one_insert_answers = burst("/bench/one-insert/", items)
            bare_seconds, bare_answers = burst("/bench/bare/", items)

            # Then the worker: from its start until every vehicle is confirmed and approved.
            worker = start_worker(
                loglevel="WARNING",
                LOG_LEVEL="WARNING",
                SITE_URL=url,
                HM_SIMULATOR_BASE_URL=f"{url}/simulator",
            )
            started = time.perf_counter()

            deadline = time.monotonic() + 600
            while (
                Clearance.objects.filter(credential=credential, status="pending").exists()
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            applied_seconds = time.perf_counter() - started
            while (
                WebhookDelivery.objects.filter(processed_at__isnull=True).exists()
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
        finally:
            if worker is None:
                raise SystemExit("webhook bench: stopped before the worker started")
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()

    return {
        "n": n,
        "clients": clients,
        "conn_max_age": conn_max_age,
        "health_checks": settings.DATABASES["default"].get("CONN_HEALTH_CHECKS"),
        "burst_seconds": burst_seconds,
        "rate": n / burst_seconds,
        "one_query_rate": n / one_query_seconds,
        "one_query_ok": sum(1 for code, _ in one_query_answers if code == 200),
        "one_insert_rate": n / one_insert_seconds,
        "one_insert_ok": sum(1 for code, _ in one_insert_answers if code == 200),
        "history": stored,
        "bare_rate": n / bare_seconds,
        "bare_ok": sum(1 for code, _ in bare_answers if code == 200),
        "applied_seconds": applied_seconds,
        "ok_answers": sum(1 for code, _ in answers if code == 200),
        "repeats": len(repeats),
        "repeats_duplicate": sum(1 for code, dup in repeat_answers if code == 200 and dup),
        "forged": len(forged),
        "forged_401": sum(1 for code, _ in forged_answers if code == 401),
        "stored": WebhookDelivery.objects.count() - stored,
        "processed": WebhookDelivery.objects.filter(processed_at__isnull=False).count() - stored,
        "events": ClearanceEvent.objects.filter(source="webhook").count(),
        "approved": Clearance.objects.filter(status="approved").count(),
        # One processed_at per confirmation batch (one HM list call each).
        "list_calls": WebhookDelivery.objects.filter(received_at__gte=past)
        .values("processed_at")
        .distinct()
        .count(),
    }


def store_history(credential, count: int) -> None:
    """``count`` deliveries confirmed long ago (within the retention), as a busy installation
    keeps: the burst's confirmation must cost the same beside them."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from clearance.models import WebhookDelivery

    if not count:
        return
    old = timezone.now() - timedelta(days=1)
    if connection.vendor == "postgresql":  # one statement: 200,000 rows in seconds
        with connection.cursor() as cursor:
            cursor.execute(
                f"""INSERT INTO {WebhookDelivery._meta.db_table}
                (credential_id, delivery_id, event, payload, received_at, processed_at, result,
                 state, attempts, next_attempt_at, last_error, claim, created_at, updated_at)
                SELECT %s, 'old-' || i, 'fleet_clearance_changed', '{{}}'::jsonb, %s, %s, 'old',
                 'done', 1, %s, '', '', %s, %s FROM generate_series(1, %s) AS i""",
                [credential.pk, old, old, old, old, old, count],
            )
            cursor.execute(f"ANALYZE {WebhookDelivery._meta.db_table}")
        return
    WebhookDelivery.objects.bulk_create(
        (
            WebhookDelivery(
                credential=credential,
                delivery_id=f"old-{i}",
                event="fleet_clearance_changed",
                payload={},
                processed_at=old,
                result="old",
                state="done",
                next_attempt_at=old,
            )
            for i in range(count)
        ),
        batch_size=2000,
    )
    WebhookDelivery.objects.update(received_at=old)


def print_table(r: dict, vendor: str, workers: int) -> None:
    print(
        f"\nWebhook burst benchmark: {r['n']:,} signed webhooks, {r['clients']} client threads, "
        f"gunicorn {workers}x4 threads (production connection settings: CONN_MAX_AGE "
        f"{r['conn_max_age']}, health checks {'on' if r['health_checks'] else 'off'}) + 1 Celery "
        f"worker (4 threads), {vendor}, {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f})"
    )
    print(
        f"receive rate {r['rate']:.0f}/s | ceiling, a view doing one query: "
        f"{r['one_query_rate']:.0f}/s (ratio {r['rate'] / r['one_query_rate']:.2f}) | "
        f"one INSERT: {r['one_insert_rate']:.0f}/s (ratio {r['rate'] / r['one_insert_rate']:.2f})"
        f" | a bare POST answer: {r['bare_rate']:.0f}/s (ratio {r['rate'] / r['bare_rate']:.2f})"
    )
    if r["history"]:
        print(f"with {r['history']:,} confirmed deliveries of earlier days already stored")
    rows = [
        ("received (200)", f"{r['ok_answers']:,} / {r['n']:,}", r["ok_answers"] == r["n"]),
        ("receive time", f"{r['burst_seconds']:.1f} s", True),
        ("receive rate", f"{r['rate']:.0f} webhooks/s", True),
        ("one-query view", f"{r['one_query_rate']:.0f} /s", r["one_query_ok"] == r["n"]),
        ("one-INSERT view", f"{r['one_insert_rate']:.0f} /s", r["one_insert_ok"] == r["n"]),
        ("bare POST", f"{r['bare_rate']:.0f} /s", r["bare_ok"] == r["n"]),
        ("all approved after", f"{r['applied_seconds']:.1f} s", r["approved"] == r["n"]),
        ("confirmation rate", f"{r['n'] / r['applied_seconds']:.0f} webhooks/s", True),
        ("stored once", f"{r['stored']:,} rows", r["stored"] == r["n"]),
        ("all confirmed", f"{r['processed']:,}", r["processed"] == r["n"]),
        ("approved once", f"{r['events']:,} events", r["events"] == r["n"]),
        ("confirmation batches", f"{r['list_calls']:,}", r["list_calls"] < r["n"] // 10),
        (
            "repeats ignored",
            f"{r['repeats_duplicate']:,} / {r['repeats']:,}",
            r["repeats_duplicate"] == r["repeats"],
        ),
        (
            "forged refused 401",
            f"{r['forged_401']} / {r['forged']}",
            r["forged_401"] == r["forged"],
        ),
    ]
    print(f"{'measure':<22}{'value':>22}  check")
    print("-" * 52)
    for name, value, ok in rows:
        print(f"{name:<22}{value:>22}  {'ok' if ok else 'FAILED'}")
    if not all(ok for _, _, ok in rows):
        raise SystemExit("webhook bench: a check failed")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="keep gunicorn's database connections this many seconds (default 60, as production)",
    )
    parser.add_argument(
        "--stored",
        type=int,
        default=0,
        help="confirmed deliveries of earlier days stored first (default 0)",
    )
    args = parser.parse_args()
    old = setup_django("bench_webhooks")
    from django.db import connection

    try:
        result = run(args.webhooks, args.clients, args.workers, args.conn_max_age, args.stored)
    finally:
        teardown(old)
    print_table(result, connection.vendor, args.workers)


if __name__ == "__main__":
    main()
