"""Benchmark: onboard then sync N vehicles (default 10,000) against the simulator over HTTP.

    python bench/lifecycle.py [--vehicles 10000] [--workers 2]

The simulator runs in gunicorn on loopback (its own processes, the same throwaway database);
this process plays the Celery worker and calls the real services:

* onboard - ``queue_clearance_requests`` (vehicles -> queued clearances + events) then
            ``request_clearances`` (claims with SKIP LOCKED, POST /v1/fleets/vehicles in batches
            of HM_CLEARANCE_BATCH_SIZE, per-VIN results applied in bulk);
* sync 1% - the first sync after the onboarding with 1 % approved at HM: only those rows are
            written (issue 13); its ceiling is the resync below (nothing to write).
* sync    - after the simulator's clock moved past the approval delay: ``sync_clearances``
            (ONE GET /v1/fleets/vehicles, the changed rows written in bulk with their events);
* resync  - the same sync again, nothing changed (nothing written).

"HM calls" are counted on the HTTP session (token requests included), "DB queries" on this
process's connection (the portal's side, not the simulator's). The "one call per VIN" columns
are what the naive design would cost: N calls at the measured single-call latency, and for
GET-by-VIN HM's documented 60 calls/min limit.

Uses the configured database (DATABASE_URL, else SQLite) through a throwaway database and the
configured cache (CACHE_URL) for the app token.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings_test")


# --- shared harness (bench/webhooks.py imports these) ---------------------------------------------


def setup_django(bench_name: str):
    """Django on a fresh throwaway database (tables straight from the models)."""
    from tests.support.db import throwaway_database

    return throwaway_database(bench_name)


def teardown(old) -> None:
    from tests.support.db import drop_throwaway_database

    drop_throwaway_database(old)


def pending_fleet_hm_has(org, name: str, vins: list[str], *, app, secrets, batch_size=2000):
    """A credential of ``org`` on the simulated ``app`` and ``vins`` pending there for an hour,
    each requested once at the simulated HM, which has them all: a webhook about any of them is
    a hint its confirmation finds true. Returns (credential, its webhook secret, the vehicles)."""
    import uuid
    from datetime import timedelta

    from django.utils import timezone

    from clearance.models import Clearance, Credential
    from simulator.models import SimClearance
    from vehicles.models import Vehicle

    secret = uuid.uuid4().hex
    credential = Credential.objects.create(
        organization=org,
        name=name,
        environment=Credential.Environment.SIMULATOR,
        client_id=secrets.client_id,
        client_secret=secrets.client_secret,
        webhook_secret=secret,
    )
    cars = Vehicle.objects.bulk_create(
        [Vehicle(organization=org, vin=vin, brand="sandbox") for vin in vins],
        batch_size=batch_size,
    )
    past = timezone.now() - timedelta(hours=1)
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
        batch_size=batch_size,
    )
    SimClearance.objects.bulk_create(
        [
            SimClearance(app=app, vin=vin, brand="sandbox", requested_at=past, times_requested=1)
            for vin in vins
        ],
        batch_size=batch_size,
    )
    return credential, secret, cars


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(
    workers: int = 2,
    threads: int = 4,
    extra_env: dict | None = None,
    extra_args: list[str] | None = None,
    app: str = "fleetportal.wsgi",
):
    """The whole portal (simulator included) in gunicorn on loopback; yields the base URL."""
    import requests

    from tests.support.db import database_url

    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "fleetportal.settings_test",
        "DATABASE_URL": database_url(),
        "SIMULATOR_ENABLED": "1",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "-b",
        f"127.0.0.1:{port}",
        "-w",
        str(workers),
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        "--timeout",
        "120",
        *(extra_args or []),
    ]
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a shared machine can be that slow to start it
        while True:
            try:
                if requests.get(f"{url}/simulator/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class QueryCounter:
    """Counts the queries this process sends (connection.execute_wrapper)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


@contextmanager
def measure(counter_session):
    """Yields a dict filled with seconds, queries and HM calls of the block."""
    from django.db import connection

    counter = QueryCounter()
    result: dict = {}
    calls_before = counter_session.calls
    waited_before = counter_session.waited
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        yield result
    result["seconds"] = time.perf_counter() - started
    result["hm_seconds"] = counter_session.waited - waited_before
    result["queries"] = counter.count
    result["hm_calls"] = counter_session.calls - calls_before


def counting_session():
    import requests

    class CountingSession(requests.Session):
        calls = 0
        waited = 0.0  # seconds spent waiting for HM (the simulator) to answer

        def request(self, *args, **kwargs):
            type(self).calls += 1
            started = time.perf_counter()
            try:
                return super().request(*args, **kwargs)
            finally:
                type(self).waited += time.perf_counter() - started

    return CountingSession()


# --- the benchmark --------------------------------------------------------------------------------


def run(n: int, workers: int) -> list[dict]:
    import logging
    from datetime import timedelta

    from django.conf import settings

    from clearance import clients
    from clearance.models import Clearance, Credential
    from clearance.services import onboarding, sending
    from clearance.services import sync as sync_service
    from clearance.work import BackgroundTask
    from organizations.models import Organization
    from simulator import clock as sim_clock
    from simulator import services as sim
    from simulator.models import SimClearance
    from vehicles.models import Vehicle

    logging.getLogger("clearance.hm").setLevel(logging.WARNING)
    # This process sends the batches itself: nothing is queued for a worker.
    BackgroundTask.delay_on_commit = lambda *args, **kwargs: None

    with gunicorn(workers=workers) as url:
        settings.HM_SIMULATOR_BASE_URL = f"{url}/simulator"
        sim_clock.reset()
        app, secrets = sim.create_app("Bench app", approval_delay_seconds=5)
        org = Organization.objects.create(name="Bench fleet", slug="bench-lifecycle")
        credential = Credential.objects.create(
            organization=org,
            name="Bench simulator",
            environment=Credential.Environment.SIMULATOR,
            client_id=secrets.client_id,
            client_secret=secrets.client_secret,
        )
        Vehicle.objects.bulk_create(
            [Vehicle(organization=org, vin=f"2HMBENCH{i:09d}", brand="sandbox") for i in range(n)],
            batch_size=2000,
        )
        session = counting_session()
        client = clients.hm_client_for(credential, session=session)
        rows = []

        with measure(session) as onboard:
            onboarding.queue_clearance_requests(org.vehicles.all(), credential=credential)
            summary = sending.request_clearances(credential.pk, client=client)
        onboard.update(step="onboard", changed=summary.sent)
        assert Clearance.objects.filter(status="pending").count() == n, "not all pending"
        rows.append(onboard)

        # One request for one VIN, to price the "one call per VIN" alternatives.
        single = []
        for i in range(5):
            started = time.perf_counter()
            client.get_clearance(f"2HMBENCH{i:09d}")
            single.append(time.perf_counter() - started)
        per_call = sorted(single)[len(single) // 2]

        # The first sync after the onboarding, with 1 % approved at HM: only those are written.
        one_pct = max(1, n // 100)
        first_vins = [f"2HMBENCH{i:09d}" for i in range(one_pct)]
        SimClearance.objects.filter(app=app).exclude(vin__in=first_vins).update(
            approval_delay_seconds=10**6
        )
        sim_clock.advance(timedelta(seconds=30))
        with measure(session) as first:
            result = sync_service.sync_clearances(credential, client=client)
        first.update(step="sync 1%", changed=result.changed, written=result.written)
        assert result.written == one_pct, f"wrote {result.written} rows for {one_pct} changes"
        rows.append(first)

        SimClearance.objects.filter(app=app).update(approval_delay_seconds=5)
        with measure(session) as sync:
            result = sync_service.sync_clearances(credential, client=client)
        sync.update(step="sync", changed=result.changed, written=result.written)
        assert Clearance.objects.filter(status="approved").count() == n, "not all approved"
        rows.append(sync)

        with measure(session) as resync:
            result = sync_service.sync_clearances(credential, client=client)
        resync.update(step="resync", changed=result.changed, written=result.written)
        rows.append(resync)

        for row in rows:
            row["naive_calls"] = n
            row["naive_seconds"] = n * per_call
        for row in rows[1:]:
            row["rate_limited_minutes"] = n / 60
        rows[0]["per_call_ms"] = per_call * 1000
        return rows


def print_table(rows: list[dict], n: int, vendor: str, batch: int) -> None:
    print(
        f"\nClearance lifecycle benchmark: {n:,} vehicles, batch {batch}, {vendor}, "
        f"{os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), simulator in gunicorn on loopback"
    )
    header = (
        f"{'step':<9}{'HM calls':>9}{'seconds':>9}{'in HM':>7}{'DB queries':>11}{'changed':>9}"
        f"  | one call per VIN: {'calls':>7}{'~seconds':>10}  notes"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        notes = ""
        if "rate_limited_minutes" in r:
            notes = f"GET-by-VIN limit 60/min: >= {r['rate_limited_minutes']:.0f} min"
        print(
            f"{r['step']:<9}{r['hm_calls']:>9}{r['seconds']:>9.1f}{r['hm_seconds']:>7.1f}"
            f"{r['queries']:>11}"
            f"{r['changed']:>9}  | {'':>17}{r['naive_calls']:>7}{r['naive_seconds']:>10.0f}  {notes}"
        )
    print(
        f"(HM calls include the app-token request; 'in HM' is the time spent waiting for the "
        f"simulator's answers; one single-VIN call took {rows[0]['per_call_ms']:.0f} ms here.)"
    )
    one_pct, resync = rows[1], rows[-1]
    print(
        f"First sync after onboarding, 1 % changed: {one_pct['seconds']:.2f} s, "
        f"{one_pct['queries']} queries, {one_pct['written']:,} rows written; ceiling, the same "
        f"sync with nothing to write: {resync['seconds']:.2f} s, {resync['queries']} queries; "
        f"ratio {one_pct['seconds'] / resync['seconds']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vehicles", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (simulator)")
    args = parser.parse_args()
    old = setup_django("bench_lifecycle")
    from django.conf import settings
    from django.db import connection

    try:
        rows = run(args.vehicles, args.workers)
    finally:
        teardown(old)
    print_table(rows, args.vehicles, connection.vendor, settings.HM_CLEARANCE_BATCH_SIZE)


if __name__ == "__main__":
    main()
