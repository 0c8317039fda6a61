"""Benchmark: the fleet overview at 10,000 and 100,000 vehicles, beside its ceilings.

    python bench/fleet_overview.py [--vehicles 10000,100000] [--repeat 25] [--verbose]

A throwaway database (DATABASE_URL, else SQLite), built by the migrations as in production, holds
one organization per fleet size (by default one of 10,000 and one of 100,000 vehicles, so each
is measured inside an installation larger than itself), each vehicle with its clearance in a
realistic status mix, vacuumed and analysed as autovacuum would. The real pages are requested
through Django's test client (full middleware stack: session, login, organization, CSP, htmx) as
a logged-in manager of each organization. Every measure, its ceiling and both sizes are
interleaved request by request, round after round, so that all see the same machine:

* overview       - GET /fleet/ (counters, first page of 50 rows sorted by VIN)
  ceiling        - the same page with counters for free (their figures computed beforehand)
* last page      - GET /fleet/?page=<last>
  ceiling        - GET /fleet/?sort=-vin: the same 50 vehicles as a keyset page (LIMIT 50 from
                   the end of the index, no OFFSET), rendered the same way
* middle page    - GET /fleet/?page=<last/2> (the page farthest from both ends), same ceiling
* filtered       - GET /fleet/?status=pending&brand=bmw&q=van&sort=-changed
* counters       - GET /fleet/counters/ (the polled partial)

Printed: the median and max of --repeat requests, the queries of one request (they must not
grow with the fleet) and their SQL time; then the rows of ``make bench``'s table
(bench/report.py): ours, the ceiling, ours ÷ ceiling and the goal.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings_test")

import report  # noqa: E402 - bench/ is not a package

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


def fill(organization, credential, start: int, end: int, offset: int) -> None:
    """Vehicles start..end-1 of an organization, each with its clearance."""
    from django.utils import timezone

    from clearance.models import Clearance
    from vehicles.models import Vehicle

    now = timezone.now()
    batch = 5000
    for first in range(start, end, batch):
        vehicles = Vehicle.objects.bulk_create(
            Vehicle(
                organization=organization,
                vin=f"WBA{offset + i:014d}",
                brand=BRANDS[i % len(BRANDS)],
                license_plate=f"B-FP {i}",
                nickname=f"Van {i}",
            )
            for i in range(first, min(end, first + batch))
        )
        Clearance.objects.bulk_create(
            Clearance(
                vehicle=v,
                credential=credential,
                status=STATUS_MIX[(first + n) % len(STATUS_MIX)],
                status_changed_at=now,
            )
            for n, v in enumerate(vehicles)
        )


def setup_fleets(sizes: list[int]):
    """One organization per size, each with a manager, filled and analysed."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from clearance.models import Credential
    from organizations.models import Membership, Organization, Role

    fleets = []
    for n, size in enumerate(sizes):
        org = Organization.objects.create(name=f"Fleet of {size:,}", slug=f"bench-{n}")
        credential = Credential.objects.create(
            organization=org, name="Bench app", environment="simulator", client_id="x"
        )
        fill(org, credential, 0, size, offset=n * 10_000_000)
        user = get_user_model().objects.create_user(f"bench{n}", password="bench-password-123")
        Membership.objects.create(user=user, organization=org, role=Role.MANAGER)
        fleets.append((size, org, user))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    return fleets


def request(client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code in (200, 286), (url, response.status_code)
    return elapsed


def queries_of(client, url: str) -> tuple[int, float, dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    sql_ms = sum(float(q["time"]) for q in captured.captured_queries) * 1000
    slowest = max(captured.captured_queries, key=lambda q: float(q["time"]))
    return len(captured.captured_queries), sql_ms, slowest


class CountersForFree:
    """The fleet view with the counters' figures computed beforehand (the ceiling)."""

    def __init__(self, organization):
        import vehicles.views.fleet as fleet_view

        self.view = fleet_view
        self.real = fleet_view.fleet_status_counts
        self.counts = self.real(organization)

    def __enter__(self):
        self.view.fleet_status_counts = lambda organization: dict(self.counts)

    def __exit__(self, *exc: Any):
        self.view.fleet_status_counts = self.real


def views_of(size: int) -> dict[str, tuple[str, bool]]:
    from django.urls import reverse

    fleet = reverse("vehicles:fleet")
    last = max(1, -(-size // 50))
    return {
        "overview": (fleet, False),
        "overview, counters for free": (fleet, True),
        "last page": (f"{fleet}?page={last}", False),
        "keyset page (same rows)": (f"{fleet}?sort=-vin", False),
        "middle page": (f"{fleet}?page={max(1, last // 2)}", False),
        "filtered": (f"{fleet}?status=pending&brand=bmw&q=van&sort=-changed", False),
        "counters": (reverse("vehicles:counters"), False),
    }


def measure(fleets, repeat: int, verbose: bool) -> dict[int, dict[str, float]]:
    """Median ms of each view of each fleet, all interleaved request by request."""
    from django.test import Client

    from organizations.middleware import SESSION_KEY

    plans = []
    for size, organization, user in fleets:
        client = Client()
        client.force_login(user)
        session = client.session
        session[SESSION_KEY] = str(organization.public_id)
        session.save()
        plans.append((size, client, CountersForFree(organization), views_of(size)))
    times: dict[tuple[int, str], list[float]] = {}
    for round_ in range(repeat + 1):  # the first round warms up (templates, caches)
        for size, client, free, views in plans:
            for name, (url, for_free) in views.items():
                if for_free:
                    with free:
                        elapsed = request(client, url)
                else:
                    elapsed = request(client, url)
                if round_:
                    times.setdefault((size, name), []).append(elapsed)
    results: dict[int, dict[str, float]] = {}
    for size, client, free, views in plans:
        for name, (url, for_free) in views.items():
            if for_free:
                with free:
                    queries, sql_ms, slowest = queries_of(client, url)
            else:
                queries, sql_ms, slowest = queries_of(client, url)
            median = statistics.median(times[size, name])
            results.setdefault(size, {})[name] = median
            print(
                f"{size:>9,} | {name:<27} | {median:>9.1f} | {max(times[size, name]):>8.1f} | "
                f"{queries:>7} | {sql_ms:>6.1f}",
                flush=True,
            )
            if verbose:
                print(f"{'':>9} |   slowest query: {slowest['sql'][:400]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--verbose", action="store_true", help="print each view's slowest query")
    args = parser.parse_args()
    sizes = sorted(int(part) for part in args.vehicles.split(",") if part)

    from tests.support.db import drop_throwaway_database, throwaway_database

    old = throwaway_database("bench_fleet_overview")
    try:
        from django.conf import settings
        from django.db import connection

        print(
            f"database: {connection.vendor}; DEBUG={settings.DEBUG}; {os.cpu_count()} CPUs, "
            f"load {os.getloadavg()[0]:.1f}; "
            f"median/max of {args.repeat} requests in ms"
        )
        header = (
            f"{'vehicles':>9} | {'view':<27} | {'median ms':>9} | {'max ms':>8} | "
            f"{'queries':>7} | {'SQL ms':>6}"
        )
        print(header)
        print("-" * len(header))
        started = time.perf_counter()
        fleets = setup_fleets(sizes)
        total = sum(sizes)
        print(f"{'':>9} | (filled {total:,} vehicles in {time.perf_counter() - started:.0f} s)")
        by_size = measure(fleets, args.repeat, args.verbose)

        print()
        for size, results in by_size.items():
            label = f"{size // 1000}k" if size % 1000 == 0 else str(size)
            report.row(
                f"fleet-overview-{label}",
                results["overview"],
                results["overview, counters for free"],
                "ms",
                note=f"{args.repeat} requests, {connection.vendor}, load {os.getloadavg()[0]:.1f}",
            )
        if len(by_size) >= 2:
            small, large = min(by_size), max(by_size)
            report.row(
                "fleet-overview-flat",
                by_size[large]["overview"],
                by_size[small]["overview"],
                "ms",
                note=f"{large:,} vehicles beside {small:,}",
            )
        large = max(by_size)
        label = f"{large // 1000}k" if large % 1000 == 0 else str(large)
        report.row(
            f"fleet-last-page-{label}",
            by_size[large]["last page"],
            by_size[large]["keyset page (same rows)"],
            "ms",
        )
        report.row(
            f"fleet-middle-page-{label}",
            by_size[large]["middle page"],
            by_size[large]["keyset page (same rows)"],
            "ms",
        )
    finally:
        drop_throwaway_database(old)


if __name__ == "__main__":
    main()
