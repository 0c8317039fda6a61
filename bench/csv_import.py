"""Benchmark: CSV import of 10,000 and 100,000 vehicles, FleetPortal vs django-import-export.

    python bench/csv_import.py [--rows 10000,100000] [--hm-deadline 30]

For each size the same generated file is imported, each run in a fresh child process (so peak
memory is that run's own):

* fleetportal  - our pipeline as the Celery job runs it: a full validation pass (the preview),
                 then the import pass (validate again, vehicles + queued clearances + events in
                 batches of IMPORT_BATCH_SIZE). Then the clearance lifecycle sends the queued
                 clearances with a counting stand-in for the HM client: "HM calls" is the
                 number of POST /v1/fleets/vehicles calls it made (HM_CLEARANCE_BATCH_SIZE each).
* import-export - django-import-export 4 ModelResource, validation-free insert of the same file
                 (bulk create, no instance lookup, no diff): only Vehicle rows, brands as written,
                 no clearances, no HM calls.

Peak memory is the child's peak RSS during the run (VmHWM, reset just before it) minus its RSS
just before the run. Uses the configured database (DATABASE_URL, else SQLite) through a
throwaway test database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings_test")

BRANDS = ["BMW", "Mercedes", "VW", "Citroën", "Alfa Romeo", "Volvo", "renault", "sandbox", "Kia"]
ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def generate(path: Path, rows: int) -> None:
    rnd = random.Random(rows)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("vin,brand,license_plate,nickname,tags,odometer_km\r\n")
        for i in range(rows):
            vin = "".join(rnd.choice(ALPHABET) for _ in range(11)) + f"{i:06d}"
            brand = rnd.choice(BRANDS)
            out.write(f'{vin},{brand},B-{i % 9999},Van {i},"depot=north;cost={i % 50}",{i * 7}\r\n')


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def start_measuring() -> float:
    """Reset the peak RSS (Linux: 5 > /proc/self/clear_refs) and return the RSS now, so the
    peak read later is this run's own and not start-up's (migrations, imports)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass
    current = _status_mb("VmRSS")
    return current if current is not None else peak_rss_mb()


def peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --- children ----------------------------------------------------------------------------------
def _django(db_name: str) -> None:
    import django
    from django.conf import settings

    settings.DATABASES["default"]["NAME"] = db_name
    settings.MIGRATION_MODULES = {app.split(".")[-1]: None for app in settings.INSTALLED_APPS}
    django.setup()


def child_fleetportal(path: Path, db_name: str, hm_deadline: float) -> dict:
    _django(db_name)
    from unittest import mock

    from django.conf import settings

    from clearance.hm.types import ClearanceResult, ClearanceStatus
    from clearance.models import Clearance, Credential
    from clearance.services import onboarding
    from imports import planning, writing
    from organizations.models import Organization

    organization = Organization.objects.create(
        name=f"Bench {path.name}", slug=f"bench-fp-{path.stem}"
    )
    credential = Credential.objects.create(
        organization=organization, name="Bench", environment=Credential.Environment.SIMULATOR
    )

    class CountingClient:
        calls = 0

        def request_clearances(self, requests):
            CountingClient.calls += 1
            return [
                ClearanceResult(vin=r.vin, status=ClearanceStatus.parse("pending"))
                for r in requests
            ]

    triggers = []
    baseline = start_measuring()
    started = time.perf_counter()
    with path.open("rb") as stream:
        _, plan, _ = planning.plan_file(stream, organization, update_existing=False)
    validated = time.perf_counter()
    with (
        mock.patch("clearance.tasks.request_clearances.delay", side_effect=triggers.append),
        path.open("rb") as stream,
    ):
        counts = writing.import_rows(
            stream, organization, credential=credential, update_existing=False
        )
    imported = time.perf_counter()
    peak = peak_rss_mb()
    deadline = time.monotonic() + hm_deadline
    summary = onboarding.request_clearances(
        credential.pk, client=CountingClient(), deadline=deadline
    )
    sent_seconds = time.perf_counter() - imported
    return {
        "tool": "fleetportal",
        "rows": plan.total,
        "created": counts.created,
        "errors": plan.errors,
        "validate_s": validated - started,
        "seconds": imported - started,
        "peak_mb": peak - baseline,
        "rss_mb": peak,
        "send_triggers": len(triggers),
        "hm_calls": CountingClient.calls,
        "hm_sent": summary.sent,
        "hm_seconds": sent_seconds,
        "hm_finished": not summary.more,
        "still_queued": Clearance.objects.filter(credential=credential, status="queued").count(),
        "batch": settings.IMPORT_BATCH_SIZE,
        "hm_batch": settings.HM_CLEARANCE_BATCH_SIZE,
    }


def child_import_export(path: Path, db_name: str) -> dict:
    _django(db_name)
    import tablib
    from import_export import fields, resources, widgets

    from organizations.models import Organization
    from vehicles.models import Vehicle

    organization = Organization.objects.create(name=f"IE {path.name}", slug=f"bench-ie-{path.stem}")

    class VehicleResource(resources.ModelResource):
        # Stored as written (a string), no parsing: the validation-free baseline.
        tags = fields.Field(attribute="tags", column_name="tags", widget=widgets.CharWidget())

        class Meta:
            model = Vehicle
            fields = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
            import_id_fields = ("vin",)
            use_bulk = True
            batch_size = 1000
            force_init_instance = True  # no lookup of existing rows
            skip_diff = True
            report_skipped = False
            clean_model_instances = False

        def init_instance(self, row=None):
            return Vehicle(organization_id=organization.pk)

    baseline = start_measuring()
    started = time.perf_counter()
    dataset = tablib.Dataset().load(path.read_text(encoding="utf-8"), format="csv")
    result = VehicleResource().import_data(dataset, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    return {
        "tool": "import-export",
        "rows": len(dataset),
        "created": Vehicle.objects.filter(organization=organization).count(),
        "errors": len(result.row_errors()),
        "seconds": seconds,
        "peak_mb": peak - baseline,
        "rss_mb": peak,
        "hm_calls": 0,
    }


# --- parent ------------------------------------------------------------------------------------
def run_child(kind: str, path: Path, db_name: str, hm_deadline: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--file", str(path), "--db", db_name]
    cmd += ["--hm-deadline", str(hm_deadline)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} on {path.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--hm-deadline", type=float, default=30.0)
    parser.add_argument("--child")
    parser.add_argument("--file")
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.child:
        path = Path(args.file)
        if args.child == "fleetportal":
            result = child_fleetportal(path, args.db, args.hm_deadline)
        else:
            result = child_import_export(path, args.db)
        print(json.dumps(result))
        return

    from django.db import connection

    from tests.support.db import drop_throwaway_database, throwaway_database

    old = throwaway_database("bench_csv_import")
    db_name = connection.settings_dict["NAME"]
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rows in [int(n) for n in args.rows.split(",")]:
                path = Path(tmp) / f"fleet{rows}.csv"
                generate(path, rows)
                size_mb = path.stat().st_size / 1024 / 1024
                for kind in ("fleetportal", "import-export"):
                    print(
                        f"… {kind}: {rows:,} rows ({size_mb:.1f} MB)", file=sys.stderr, flush=True
                    )
                    result = run_child(kind, path, db_name, args.hm_deadline)
                    result["size_mb"] = size_mb
                    results.append(result)
    finally:
        drop_throwaway_database(old)
    print_table(results, connection.vendor)


def print_table(results: list[dict], vendor: str) -> None:
    header = f"{'tool':<14}{'rows':>9}{'MB':>6}{'created':>9}{'seconds':>9}{'rows/s':>9}"
    header += f"{'peak MB':>9}{'HM calls':>10}  notes"
    print(f"\nCSV import benchmark ({vendor}, {os.cpu_count()} CPUs)")
    print(header)
    print("-" * len(header))
    for r in results:
        notes = ""
        if r["tool"] == "fleetportal":
            notes = (
                f"validate pass {r['validate_s']:.1f}s + import pass; "
                f"{r['hm_sent']:,} VINs sent in {r['hm_seconds']:.1f}s "
                f"(batch {r['hm_batch']}){'' if r['hm_finished'] else ', stopped at deadline'}; "
                f"{r['send_triggers']} send tasks queued"
            )
        else:
            notes = "no validation, vehicles only"
        print(
            f"{r['tool']:<14}{r['rows']:>9,}{r['size_mb']:>6.1f}{r['created']:>9,}"
            f"{r['seconds']:>9.1f}{r['rows'] / r['seconds']:>9,.0f}{r['peak_mb']:>9.1f}"
            f"{r['hm_calls']:>10,}  {notes}"
        )
    print(
        "peak MB = peak RSS of the run above the process's RSS before it; "
        "fleetportal also writes one clearance + one event per vehicle."
    )


if __name__ == "__main__":
    main()
