"""Benchmark: the fleet overview page with 10, 1,000 and 10,000 vehicles.

    python bench/fleet_overview.py [--vehicles 10,1000,10000] [--repeat 5]

For each fleet size, a throwaway database (DATABASE_URL, else SQLite; tables straight from the
models) is filled with one organization's vehicles and their clearances in a realistic status
mix, plus a second organization of the same size (so scoping is exercised). Then the real page is
requested through Django's test client (full middleware stack: session, login, organization,
CSP, htmx) as a logged-in manager:

* overview   - GET /fleet/ (counters, first page of 50 rows sorted by VIN)
* filtered   - GET /fleet/?status=pending&brand=bmw&q=van&sort=-changed (filter + text + sort)
* last page  - GET /fleet/?page=<last> (deep pagination: OFFSET)
* counters   - GET /fleet/counters/ (the polled partial)
* row        - GET /fleet/<id>/row/ (one polled row)

Times are the median and the max of --repeat runs after one warm-up; "queries" is the number of
SQL queries of one request (it must not grow with the fleet) and "SQL ms" their total time.
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

STATUS_MIX = (
    ["approved"] * 60
    + ["pending"] * 20
    + ["rejected"] * 5
    + ["revoked"] * 5
    + ["queued"] * 3
    + ["revoking"] * 2
    + ["canceled"] * 2
    + ["error"] * 3
)
BRANDS = ["bmw", "mercedes-benz", "volkswagen", "renault", "kia", "ford", "sandbox", "peugeot"]


def setup_django():
    from tests.support.db import throwaway_database

    return throwaway_database("bench_fleet_overview")


def teardown(old) -> None:
    from tests.support.db import drop_throwaway_database

    drop_throwaway_database(old)


def fill(organization, size: int, credential, offset: int) -> None:
    from django.utils import timezone

    from clearance.models import Clearance
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
                nickname=f"Van {i}",
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


def populate(size: int):
    from django.contrib.auth import get_user_model
    from django.db import connection

    from clearance.models import Credential
    from organizations.models import Membership, Organization, Role
    from vehicles.models import Vehicle

    Vehicle.objects.all().delete()
    Credential.objects.all().delete()
    Organization.objects.all().delete()
    get_user_model().objects.all().delete()
    orgs = []
    for n, name in enumerate(["Bench Fleet", "Other Fleet"]):
        org = Organization.objects.create(name=name, slug=f"bench-{n}")
        credential = Credential.objects.create(
            organization=org, name="Bench app", environment="simulator", client_id="x"
        )
        fill(org, size, credential, offset=n * 10_000_000)
        orgs.append(org)
    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    Membership.objects.create(user=user, organization=orgs[0], role=Role.MANAGER)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return orgs[0], user


def measure(client, url: str, repeat: int) -> tuple[float, float, int, float, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm-up (template compilation, caches)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code in (200, 286), (url, response.status_code)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    sql_ms = sum(float(q["time"]) for q in captured.captured_queries) * 1000
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
    return statistics.median(times), max(times), len(captured.captured_queries), sql_ms, slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--verbose", action="store_true", help="print each view's slowest query")
    args = parser.parse_args()
    sizes = [int(part) for part in args.vehicles.split(",") if part]

    old = setup_django()
    try:
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.urls import reverse

        from organizations.middleware import SESSION_KEY
        from vehicles.models import Vehicle

        print(f"database: {connection.vendor}; repeat: {args.repeat} (median/max in ms)")
        header = (
            f"{'vehicles':>9} | {'view':<10} | {'median ms':>9} | {'max ms':>8} | {'queries':>7} "
            f"| {'SQL ms':>6}"
        )
        print(header)
        print("-" * len(header))
        for size in sizes:
            started = time.perf_counter()
            organization, user = populate(size)
            fill_s = time.perf_counter() - started
            client = Client()
            client.force_login(user)
            session = client.session
            session[SESSION_KEY] = str(organization.public_id)
            session.save()
            mine = Vehicle.objects.filter(organization=organization)
            one = mine.filter(clearance__status="pending").first() or mine.first()
            last_page = max(1, -(-size // 50))
            fleet = reverse("vehicles:fleet")
            views = [
                ("overview", fleet),
                ("filtered", f"{fleet}?status=pending&brand=bmw&q=van&sort=-changed"),
                ("last page", f"{fleet}?page={last_page}"),
                ("counters", reverse("vehicles:counters")),
                ("row", reverse("vehicles:row", args=[one.public_id])),
            ]
            for name, url in views:
                median, worst, queries, sql_ms, slowest = measure(client, url, args.repeat)
                print(
                    f"{size:>9} | {name:<10} | {median:>9.1f} | {worst:>8.1f} | {queries:>7} "
                    f"| {sql_ms:>6.1f}"
                )
                if args.verbose:
                    print(f"{'':>9} |   slowest query: {slowest['sql'][:300]}")
            print(
                f"{'':>9} | (filled {2 * size} vehicles + clearances in {fill_s:.1f}s, DEBUG={settings.DEBUG})"
            )
    finally:
        teardown(old)


if __name__ == "__main__":
    main()
