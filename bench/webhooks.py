"""Benchmark: a burst of 5,000 signed HM webhooks against gunicorn on loopback.

    python bench/webhooks.py [--webhooks 5000] [--clients 8] [--workers 2] [--conn-max-age 0]

The portal runs in gunicorn (``--workers`` processes x 4 threads) and one Celery worker process
(4 threads) applies the deliveries, both on a throwaway database and the configured broker.
``--clients`` threads POST ``fleet_clearance_changed`` (pending -> approved) for as many
vehicles, each signed with the credential's secret and with its own X-HM-Delivery id; then 10 %
of them again (same ids: must be stored once) and 100 forged ones (must be 401).

Printed: the receive rate (answers/s), the time until every delivery was applied, and the
checks: every delivery stored once, applied once (one event each), every vehicle approved.
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
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lifecycle import gunicorn, setup_django, teardown


def run(n: int, clients: int, workers: int, conn_max_age: int = 0) -> dict:
    from django.utils import timezone

    from clearance.models import Clearance, ClearanceEvent, Credential, WebhookDelivery
    from organizations.models import Organization
    from tests.support.worker import purge_broker, start_worker
    from vehicles.models import Vehicle

    org = Organization.objects.create(name="Webhook bench", slug="bench-webhooks")
    secret = uuid.uuid4().hex
    credential = Credential.objects.create(
        organization=org,
        name="Bench",
        environment=Credential.Environment.SIMULATOR,
        client_id="bench",
        client_secret="bench",
        webhook_secret=secret,
    )
    vins = [f"2HMHOOK{i:010d}" for i in range(n)]
    cars = Vehicle.objects.bulk_create(
        [Vehicle(organization=org, vin=vin, brand="sandbox") for vin in vins], batch_size=2000
    )
    past = timezone.now() - timezone.timedelta(hours=1)
    Clearance.objects.bulk_create(
        [
            Clearance(
                vehicle=car,
                credential=credential,
                status="pending",
                status_known_at=past,
                requested_at=past,
            )
            for car in cars
        ],
        batch_size=2000,
    )

    def message(vin: str, delivery: str, *, forged: bool = False):
        body = json.dumps(
            {
                "vehicle": {"vin": vin},
                "event": {"action": "approved"},
            }
        ).encode()
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
    worker = start_worker(loglevel="WARNING", LOG_LEVEL="WARNING")
    try:
        # ERROR: the 100 forged webhooks would log a warning each.
        extra_args = []
        if conn_max_age:
            # What DATABASE CONN_MAX_AGE would give (settings keep 0 = a new connection per
            # request): set in each gunicorn worker after it starts.
            config = Path(tempfile.mkdtemp()) / "gunicorn_conn.py"
            config.write_text(
                "def post_worker_init(worker):\n"
                "    from django.db import connections\n"
                f"    connections['default'].settings_dict['CONN_MAX_AGE'] = {conn_max_age}\n"
            )
            extra_args = ["-c", str(config)]
        with gunicorn(
            workers=workers, extra_env={"LOG_LEVEL": "ERROR"}, extra_args=extra_args
        ) as url:
            endpoint = f"{url}/webhooks/high-mobility/{credential.public_id}/"
            import threading

            local = threading.local()

            parts = urlsplit(endpoint)

            def post(item):
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
                    conn.request("POST", parts.path, body=body, headers=headers)
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

            burst = [(vin, d, False) for vin, d in zip(vins, deliveries, strict=True)]
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                answers = list(pool.map(post, burst))
            burst_seconds = time.perf_counter() - started

            repeats = burst[: max(1, n // 10)]
            forged = [(vin, str(uuid.uuid4()), True) for vin in vins[:100]]
            with ThreadPoolExecutor(clients) as pool:
                repeat_answers = list(pool.map(post, repeats))
                forged_answers = [code for code, _ in pool.map(post, forged)]

            deadline = time.monotonic() + 600
            while WebhookDelivery.objects.filter(processed_at__isnull=True).exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            applied_seconds = time.perf_counter() - started
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()

    return {
        "n": n,
        "clients": clients,
        "conn_max_age": conn_max_age,
        "burst_seconds": burst_seconds,
        "rate": n / burst_seconds,
        "applied_seconds": applied_seconds,
        "ok_answers": sum(1 for code, _ in answers if code == 200),
        "repeats": len(repeats),
        "repeats_duplicate": sum(1 for code, dup in repeat_answers if code == 200 and dup),
        "forged": len(forged),
        "forged_401": sum(1 for code in forged_answers if code == 401),
        "stored": WebhookDelivery.objects.count(),
        "processed": WebhookDelivery.objects.filter(processed_at__isnull=False).count(),
        "events": ClearanceEvent.objects.filter(source="webhook").count(),
        "approved": Clearance.objects.filter(status="approved").count(),
    }


def print_table(r: dict, vendor: str, workers: int) -> None:
    print(
        f"\nWebhook burst benchmark: {r['n']:,} signed webhooks, {r['clients']} client threads, "
        f"gunicorn {workers}x4 threads (CONN_MAX_AGE {r['conn_max_age']}) + 1 Celery worker "
        f"(4 threads), {vendor}, "
        f"{os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f})"
    )
    rows = [
        ("received (200)", f"{r['ok_answers']:,} / {r['n']:,}", r["ok_answers"] == r["n"]),
        ("receive time", f"{r['burst_seconds']:.1f} s", True),
        ("receive rate", f"{r['rate']:.0f} webhooks/s", True),
        ("all applied after", f"{r['applied_seconds']:.1f} s", r["processed"] == r["n"]),
        ("stored once", f"{r['stored']:,} rows", r["stored"] == r["n"]),
        ("applied once", f"{r['events']:,} events", r["events"] == r["n"]),
        ("vehicles approved", f"{r['approved']:,}", r["approved"] == r["n"]),
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
        default=0,
        help="keep gunicorn's database connections this many seconds (default 0, as settings)",
    )
    args = parser.parse_args()
    old = setup_django("bench_webhooks")
    from django.db import connection

    try:
        result = run(args.webhooks, args.clients, args.workers, args.conn_max_age)
    finally:
        teardown(old)
    print_table(result, connection.vendor, args.workers)


if __name__ == "__main__":
    main()
