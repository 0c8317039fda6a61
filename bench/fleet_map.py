"""Benchmark: the fleet map's JSON and the fleet list's telemetry columns at fleet scale.

    python bench/fleet_map.py [--vehicles 1000,10000] [--list-vehicles 10,1000,100000] [--repeat 5]

For each size, a throwaway database (DATABASE_URL, else SQLite; tables straight from the models)
gets one organization's approved vehicles, each with its newest telemetry (LatestTelemetry) spread
over eight cities, 8 named places, and a second organization of the same size (scoping). Then, as
a logged-in viewer through the full middleware stack:

* map page - GET /telemetry/map/ (counts and the table's first 500 rows)
* map JSON - GET /telemetry/map/data.json (every vehicle, one compact document)

Then, for --list-vehicles, the fleet list with its telemetry columns (first page of 50):

* list         - GET /fleet/
* list energy  - GET /fleet/?sort=-energy (sorted by battery/fuel)
* list filters - GET /fleet/?energy_below=30&silent_hours=2&sort=odometer
* list place   - GET /fleet/?place=<Depot 0>

The number of queries must be the same for every size. The list's ceiling, measured in the same
run: the count and the first page's rows with clearance and newest telemetry by two raw queries.

Beside the JSON it prints the machine's ceiling measured in the same run: the same rows read with
one raw SQL query and dumped with json.dumps, nothing else; and the ratio. Sizes are the raw and
the gzipped body (gzip level 6, as a reverse proxy would send it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings_test")

CITIES = [
    (52.52, 13.405),
    (48.137, 11.575),
    (53.551, 9.994),
    (52.368, 4.904),
    (48.857, 2.352),
    (48.208, 16.374),
    (47.377, 8.542),
    (45.464, 9.19),
]


def populate(size: int):
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from clearance.models import Clearance, Credential
    from organizations.models import Membership, Organization, Role
    from telemetry.models import LatestTelemetry, Place
    from vehicles.models import Vehicle

    Vehicle.objects.all().delete()
    Credential.objects.all().delete()
    Organization.objects.all().delete()
    get_user_model().objects.all().delete()
    now = timezone.now()
    orgs = []
    for n, name in enumerate(["Bench Fleet", "Other Fleet"]):
        org = Organization.objects.create(name=name, slug=f"bench-{n}")
        credential = Credential.objects.create(
            organization=org, name="Bench app", environment="simulator", client_id="x"
        )
        for i, (lat, lon) in enumerate(CITIES):
            Place.objects.create(
                organization=org, name=f"Depot {i}", latitude=lat, longitude=lon, radius_m=800
            )
        for start in range(0, size, 5000):
            vehicles = Vehicle.objects.bulk_create(
                Vehicle(
                    organization=org,
                    vin=f"WBA{n * 10_000_000 + i:014d}",
                    brand="bmw",
                    license_plate=f"B-FP {i}",
                    nickname=f"Van {i}",
                    last_seen_at=now - timedelta(minutes=(i * 37) % 5000),
                )
                for i in range(start, min(size, start + 5000))
            )
            Clearance.objects.bulk_create(
                Clearance(vehicle=v, credential=credential, status="approved") for v in vehicles
            )
            rows = []
            for k, v in enumerate(vehicles):
                lat, lon = CITIES[k % len(CITIES)]
                at = now - timedelta(minutes=((start + k) * 37) % 5000)
                rows.append(
                    LatestTelemetry(
                        vehicle=v,
                        captured_at=at,
                        battery_level=(k % 100) / 100,
                        energy_level=(k % 100) / 100,
                        energy_at=at,
                        odometer_km=10_000 + k,
                        estimated_range_km=300,
                        # Every fourth vehicle at its city's depot, the others around it.
                        latitude=lat + (0 if k % 4 == 0 else ((k * 7919) % 1000 - 500) / 10_000),
                        longitude=lon + (0 if k % 4 == 0 else ((k * 104729) % 1000 - 500) / 10_000),
                        position_at=at,
                    )
                )
            LatestTelemetry.objects.bulk_create(rows)
        orgs.append(org)
    user = get_user_model().objects.create_user("bench", password="bench-password-123")
    Membership.objects.create(user=user, organization=orgs[0], role=Role.VIEWER)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return orgs[0], user


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def ceiling(organization_id: int) -> bytes:
    """The least work that gives the same facts: one raw query, json.dumps of its rows."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT v.public_id, v.nickname, v.license_plate, c.status, t.latitude, t.longitude,"
            " v.last_seen_at, t.battery_level, t.fuel_level"
            " FROM vehicles_vehicle v JOIN clearance_clearance c ON c.vehicle_id = v.id"
            " JOIN telemetry_latesttelemetry t ON t.vehicle_id = v.id"
            " WHERE v.organization_id = %s AND c.status = 'approved'"
            " AND t.latitude IS NOT NULL ORDER BY v.vin",
            [organization_id],
        )
        rows = [[str(c) if c is not None else None for c in row] for row in cursor.fetchall()]
    return json.dumps(rows, separators=(",", ":")).encode()


def list_ceiling(organization_id: int) -> None:
    """The least work for one page of the list: the count, and the first 50 rows with their
    clearance and newest telemetry, sorted by VIN, by two raw SQL queries."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM vehicles_vehicle WHERE organization_id = %s", [organization_id]
        )
        cursor.fetchone()
        cursor.execute(
            "SELECT v.id, v.vin, v.nickname, v.license_plate, c.status, t.battery_level,"
            " t.fuel_level, t.estimated_range_km, t.odometer_km, t.latitude, t.longitude,"
            " v.last_seen_at FROM vehicles_vehicle v"
            " LEFT JOIN clearance_clearance c ON c.vehicle_id = v.id"
            " LEFT JOIN telemetry_latesttelemetry t ON t.vehicle_id = v.id"
            " WHERE v.organization_id = %s ORDER BY v.vin LIMIT 50",
            [organization_id],
        )
        cursor.fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", default="1000,10000")
    parser.add_argument("--list-vehicles", default="10,1000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(part) for part in args.vehicles.split(",") if part]
    list_sizes = [int(part) for part in args.list_vehicles.split(",") if part]

    from tests.support.db import drop_throwaway_database, throwaway_database

    old = throwaway_database("bench_fleet_map")
    try:
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext
        from django.urls import reverse

        from organizations.middleware import SESSION_KEY

        print(f"database: {connection.vendor}; repeat: {args.repeat} (median/max in ms)")
        header = (
            f"{'vehicles':>9} | {'view':<8} | {'median ms':>9} | {'max ms':>8} | {'queries':>7} "
            f"| {'bytes':>9} | {'gzipped':>8} | {'ceiling ms':>10} | {'ratio':>5}"
        )
        print(header)
        print("-" * len(header))
        for size in sizes:
            organization, user = populate(size)
            client = Client()
            client.force_login(user)
            session = client.session
            session[SESSION_KEY] = str(organization.public_id)
            session.save()
            ceiling_ms, _ = timed(lambda org=organization: ceiling(org.pk), args.repeat)
            for name, url in (
                ("map page", reverse("telemetry:fleet_map")),
                ("map JSON", reverse("telemetry:fleet_map_data")),
            ):
                median, worst = timed(lambda url=url, c=client: c.get(url), args.repeat)
                with CaptureQueriesContext(connection) as captured:
                    body = client.get(url).content
                if name == "map JSON":
                    shown = len(json.loads(body)["vehicles"])
                    assert shown == size, (shown, size)
                extra = (
                    f"{ceiling_ms:>10.1f} | {median / ceiling_ms:>5.1f}"
                    if name == "map JSON"
                    else f"{'':>10} | {'':>5}"
                )
                print(
                    f"{size:>9} | {name:<8} | {median:>9.1f} | {worst:>8.1f} | "
                    f"{len(captured.captured_queries):>7} | {len(body):>9,} | "
                    f"{len(gzip.compress(body, 6)):>8,} | {extra}"
                )
        if list_sizes:
            print()
            header = (
                f"{'vehicles':>9} | {'view':<12} | {'median ms':>9} | {'max ms':>8} | "
                f"{'queries':>7} | {'SQL ms':>7} | {'ceiling ms':>10} | {'ratio':>5}"
            )
            print(header)
            print("-" * len(header))
        for size in list_sizes:
            started = time.perf_counter()
            organization, user = populate(size)
            fill_s = time.perf_counter() - started
            client = Client()
            client.force_login(user)
            session = client.session
            session[SESSION_KEY] = str(organization.public_id)
            session.save()
            place = organization.places.order_by("name").first()
            fleet = reverse("vehicles:fleet")
            for name, url in (
                ("list", fleet),
                ("list energy", f"{fleet}?sort=-energy"),
                ("list filters", f"{fleet}?energy_below=30&silent_hours=2&sort=odometer"),
                ("list place", f"{fleet}?place={place.public_id}"),
            ):
                # The ceiling beside each view, so that both see the same load.
                ceiling_ms, _ = timed(lambda org=organization: list_ceiling(org.pk), args.repeat)
                median, worst = timed(lambda url=url, c=client: c.get(url), args.repeat)
                with CaptureQueriesContext(connection) as captured:
                    assert client.get(url).status_code == 200
                sql_ms = sum(float(q["time"]) for q in captured.captured_queries) * 1000
                print(
                    f"{size:>9} | {name:<12} | {median:>9.1f} | {worst:>8.1f} | "
                    f"{len(captured.captured_queries):>7} | {sql_ms:>7.1f} | "
                    f"{ceiling_ms:>10.1f} | {median / ceiling_ms:>5.1f}"
                )
            print(f"{'':>9} | (filled {2 * size} vehicles in {fill_s:.1f}s)")
    finally:
        drop_throwaway_database(old)


if __name__ == "__main__":
    main()
