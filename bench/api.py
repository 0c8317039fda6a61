"""Benchmark: the integrator API at fleet scale.

    python bench/api.py [--vehicles 100000] [--repeat 5] [--batch 1000]

A throwaway database (DATABASE_URL, else SQLite; tables straight from the models) gets one
organization with --vehicles vehicles, their clearances in a realistic status mix and one
telemetry snapshot each, plus a second organization of a tenth of the size (scoping). Requests go
through Django's test client and the whole middleware stack with a real API token:

* GET /api/v1/vehicles?limit=100: the first page, a page from the middle (cursor), a filtered
  page (status + brand); the number of queries must not grow with the fleet. Ceiling: the same
  100 rows read with one plain SQL join (vehicle, clearance, latest snapshot id) in the same run.
* POST /api/v1/vehicles with --batch new VINs (validated, created, queued for clearance, answered
  per item, recorded in the change feed and the audit log). Ceiling: a bare bulk_create of the
  same number of vehicles, nothing else, in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings_test")

STATUS_MIX = ["approved"] * 6 + ["pending"] * 2 + ["rejected", "revoked"]
BRANDS = ["bmw", "mercedes-benz", "volkswagen", "renault", "kia", "ford", "peugeot"]


def fill(organization, size: int, credential, offset: int) -> None:
    from django.utils import timezone

    from clearance.models import Clearance
    from telemetry.models import TelemetrySnapshot
    from vehicles.models import Vehicle

    now = timezone.now()
    batch = 5000
    for start in range(0, size, batch):
        vehicles = Vehicle.objects.bulk_create(
            Vehicle(
                organization=organization,
                vin=f"WBA{offset + i:014d}",
                brand=BRANDS[i % len(BRANDS)],
                license_plate=f"B-FP {i}",
                tags={"depot": "berlin" if i % 2 else "hamburg"},
            )
            for i in range(start, min(size, start + batch))
        )
        Clearance.objects.bulk_create(
            Clearance(
                vehicle=v,
                credential=credential,
                status=STATUS_MIX[(start + n) % len(STATUS_MIX)],
                status_changed_at=now,
            )
            for n, v in enumerate(vehicles)
        )
        TelemetrySnapshot.objects.bulk_create(
            TelemetrySnapshot(
                vehicle=v,
                captured_at=now,
                source="pull",
                data={},
                odometer_km=1000.0 + n,
                battery_level=0.5,
                latitude=52.5,
                longitude=13.4,
            )
            for n, v in enumerate(vehicles)
        )


def populate(size: int):
    from django.db import connection

    from api.models import Scope
    from api.tokens import create_token
    from clearance.models import Credential
    from organizations.models import Organization

    orgs = []
    for n, (name, count) in enumerate([("Bench Fleet", size), ("Other Fleet", max(1, size // 10))]):
        org = Organization.objects.create(name=name, slug=f"bench-{n}")
        credential = Credential.objects.create(
            organization=org, name="Bench app", environment="simulator", client_id="x"
        )
        fill(org, count, credential, offset=n * 10_000_000)
        orgs.append(org)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    _, text = create_token(orgs[0], name="bench", scope=Scope.WRITE)
    return orgs[0], text


def timed(call, repeat: int) -> tuple[float, int]:
    """Median ms of ``repeat`` calls after a warm-up, and the queries of one call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as captured:
        call()
    return statistics.median(times), len(captured.captured_queries)


def plain_page_sql(organization_id: int, after: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT v.*, c.*, (
                SELECT t.id FROM vehicles_telemetrysnapshot t WHERE t.vehicle_id = v.id
                ORDER BY t.captured_at DESC LIMIT 1
            )
            FROM vehicles_vehicle v LEFT JOIN clearance_clearance c ON c.vehicle_id = v.id
            WHERE v.organization_id = %s AND v.id > %s ORDER BY v.id LIMIT 100
            """,
            [organization_id, after],
        )
        cursor.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    from tests.support.db import drop_throwaway_database, throwaway_database

    old = throwaway_database("bench_api")
    try:
        from django.conf import settings
        from django.db import connection
        from django.test import Client

        from api.reads import encode_cursor
        from vehicles.models import Vehicle

        settings.API_RATE_LIMIT_PER_MINUTE = 0
        started = time.perf_counter()
        organization, token = populate(args.vehicles)
        print(
            f"database: {connection.vendor}; {args.vehicles:,} vehicles (+{args.vehicles // 10:,} "
            f"in another organization) with clearances and telemetry, filled in "
            f"{time.perf_counter() - started:.0f} s; median of {args.repeat} runs"
        )
        client = Client(headers={"Authorization": f"Bearer {token}"})
        ids = list(
            Vehicle.objects.filter(organization=organization)
            .order_by("pk")
            .values_list("pk", flat=True)[args.vehicles // 2 : args.vehicles // 2 + 1]
        )
        middle = encode_cursor(ids[0])

        def page(params):
            def call():
                response = client.get("/api/v1/vehicles", params)
                assert response.status_code == 200, response.content[:300]
                assert len(response.json()["items"]) == 100

            return call

        header = f"{'request':<42} | {'ms':>8} | {'queries':>7} | {'ceiling ms':>10} | {'ratio':>5}"
        print(header)
        print("-" * len(header))
        ceiling_first, _ = timed(lambda: plain_page_sql(organization.pk, 0), args.repeat)
        ceiling_middle, _ = timed(lambda: plain_page_sql(organization.pk, ids[0]), args.repeat)
        rows = [
            ("GET /vehicles?limit=100 (first page)", {"limit": 100}, ceiling_first),
            (
                "GET /vehicles?limit=100 (cursor, middle)",
                {"limit": 100, "cursor": middle},
                ceiling_middle,
            ),
            (
                "GET /vehicles?status=approved&brand=bmw",
                {"limit": 100, "status": "approved", "brand": "bmw"},
                None,
            ),
        ]
        for name, params, ceiling in rows:
            ms, queries = timed(page(params), args.repeat)
            ceiling_text = (
                f"{ceiling:>10.1f} | {ms / ceiling:>5.1f}" if ceiling else f"{'':>10} | {'':>5}"
            )
            print(f"{name:<42} | {ms:>8.1f} | {queries:>7} | {ceiling_text}")

        # POST of a batch of new VINs, against a bare bulk_create of as many vehicles.
        body = {
            "vehicles": [
                {"vin": f"WVW{i:014d}", "brand": "VW", "tags": {"depot": "x"}}
                for i in range(args.batch)
            ]
        }
        from django.db import transaction
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.post("/api/v1/vehicles", body, content_type="application/json")
            post_ms = (time.perf_counter() - started) * 1000
        assert response.status_code == 200 and response.json()["created"] == args.batch
        started = time.perf_counter()
        with transaction.atomic():
            Vehicle.objects.bulk_create(
                Vehicle(organization=organization, vin=f"WVX{i:014d}", brand="volkswagen")
                for i in range(args.batch)
            )
        bare_ms = (time.perf_counter() - started) * 1000
        print(
            f"{f'POST /vehicles ({args.batch:,} VINs)':<42} | {post_ms:>8.1f} | "
            f"{len(captured.captured_queries):>7} | {bare_ms:>10.1f} | {post_ms / bare_ms:>5.1f}"
        )
        print(
            "ceilings: the same 100 rows by one plain SQL join; a bare bulk_create of the same "
            f"number of vehicles (DEBUG={settings.DEBUG})"
        )
    finally:
        drop_throwaway_database(old)


if __name__ == "__main__":
    main()
