"""Benchmark: CSV import (preview + import) of 100,000 vehicles beside its ceiling, plain COPY.

    python bench/csv_import.py [--rows 100000] [--repeat 1] [--hm-seconds 20] [--ie-default-rows N]
                               [--without-import-export]

The same generated file is imported by each contender, each run in a fresh child process (so
peak memory is that run's own), all in the same run:

* fleetportal    - our pipeline as the workers run it: the upload stored, the preview (one
                   validation pass staging the valid rows by COPY), then the import batches
                   (vehicles + queued clearances + their events by INSERT ... SELECT, ANALYZE at
                   the end). rows/s counts preview + import.
* plain COPY     - the ceiling: the file read with Python's csv module and written into the
                   vehicles table with one COPY (PostgreSQL; a multi-row INSERT on SQLite), no
                   validation, one table.
* import-export  - django-import-export 4: its default set-up (a ModelResource, one row at a
                   time, existing rows looked up by VIN) and its fastest (bulk create, no lookup,
                   no diff, no validation), vehicles only.

Then "HM sends after the import": the clearance lifecycle sends the 100,000 queued clearances
right after the import (planner statistics as the import left them) to an HM stand-in answering
at once, for --hm-seconds, and the same again after an explicit ANALYZE (the ceiling): VINs/s.

Peak memory is the child's peak RSS during the run (VmHWM, reset just before it) minus its RSS
just before the run. Uses the configured database (DATABASE_URL, else SQLite) through a
throwaway test database. Each figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleetportal.settings_test")
os.environ["DJANGO_DEBUG"] = "0"  # production shape: DEBUG would also keep every query in memory

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


def _organization(prefix: str, path: Path):
    from organizations.models import Organization

    stamp = f"{prefix}-{path.stem}-{time.time_ns()}"
    return Organization.objects.create(name=stamp, slug=stamp)


def child_fleetportal(path: Path, db_name: str, hm_seconds: float) -> dict:
    _django(db_name)
    from unittest import mock

    from django.conf import settings
    from django.core.files.uploadedfile import UploadedFile
    from django.db import connection

    from clearance.hm.types import ClearanceResult, ClearanceStatus
    from clearance.models import Clearance, Credential
    from clearance.services import sending
    from imports import services
    from imports.models import ImportJob

    organization = _organization("fp", path)
    credential = Credential.objects.create(
        organization=organization, name="Bench", environment=Credential.Environment.SIMULATOR
    )

    triggers = []
    with (
        mock.patch("clearance.tasks.request_clearances.delay", side_effect=triggers.append),
        mock.patch("imports.tasks.validate_import_job.delay"),
        mock.patch("imports.tasks.run_import_job.delay"),
    ):
        baseline = start_measuring()
        started = time.perf_counter()
        with path.open("rb") as stream:
            upload = UploadedFile(stream, name=path.name, size=path.stat().st_size)
            job = services.import_job_create(
                organization=organization, user=None, upload=upload, credential=credential
            )
        stored = time.perf_counter()
        services.import_job_validate(job.pk)
        validated = time.perf_counter()
        job.refresh_from_db()
        assert job.status == ImportJob.Status.PREVIEW, job.message
        services.import_job_confirm(job, user=None, accept_skipped=True)
        steps = 1
        while services.import_job_step(job.pk):
            steps += 1
        imported = time.perf_counter()
        peak = peak_rss_mb()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE, job.message

    def send(seconds: float) -> tuple[int, float, float]:
        class Instant:
            def request_clearances(self, requests):
                return [
                    ClearanceResult(vin=r.vin, status=ClearanceStatus.parse("pending"))
                    for r in requests
                ]

        begun = time.perf_counter()
        summary = sending.request_clearances(
            credential.pk, client=Instant(), deadline=time.monotonic() + seconds
        )
        return summary.sent, time.perf_counter() - begun, summary.hm_calls

    sent, send_s, calls = send(hm_seconds)
    # The ceiling: the same sends with fresh statistics: the rows sent are queued again and the
    # whole database analysed explicitly before sending them once more.
    Clearance.objects.filter(credential=credential).update(status="queued")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    sent2, send2_s, _ = send(hm_seconds)
    return {
        "tool": "fleetportal",
        "rows": job.total,
        "created": job.created,
        "queued": job.queued_requests,
        "store_s": stored - started,
        "validate_s": validated - stored,
        "import_s": imported - validated,
        "seconds": imported - stored,
        "peak_mb": peak - baseline,
        "tasks": steps,
        "batch": settings.IMPORT_BATCH_SIZE,
        "hm_vins_per_s": sent / send_s if send_s else 0,
        "hm_sent": sent,
        "hm_calls": calls,
        "hm_ceiling_vins_per_s": sent2 / send2_s if send2_s else 0,
        "still_queued": Clearance.objects.filter(credential=credential, status="queued").count(),
    }


def child_copy(path: Path, db_name: str) -> dict:
    """The ceiling: the same rows into the vehicles table, one COPY, nothing checked."""
    _django(db_name)
    import uuid

    from django.db import connection, transaction
    from django.utils import timezone

    from vehicles.models import Vehicle

    organization = _organization("copy", path)
    table = connection.ops.quote_name(Vehicle._meta.db_table)
    columns = "public_id, organization_id, vin, brand, license_plate, nickname, tags, "
    columns += "odometer_km, created_at, updated_at"
    now = timezone.now()
    baseline = start_measuring()
    started = time.perf_counter()
    rows = 0
    with path.open(encoding="utf-8", newline="") as text, transaction.atomic():
        reader = csv.reader(text)
        next(reader)

        def values():
            nonlocal rows
            for vin, brand, plate, nickname, tags, odometer in reader:
                rows += 1
                pairs = dict(part.split("=", 1) for part in tags.split(";"))
                yield (
                    str(uuid.uuid4()),
                    organization.pk,
                    vin,
                    brand,
                    plate,
                    nickname,
                    json.dumps(pairs),
                    int(odometer),
                    now,
                    now,
                )

        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in values():
                        copy.write_row(row)
            else:
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * 10)})",
                    ((*row[:8], str(now), str(now)) for row in values()),
                )
    seconds = time.perf_counter() - started
    return {
        "tool": "plain COPY",
        "rows": rows,
        "created": Vehicle.objects.filter(organization=organization).count(),
        "seconds": seconds,
        "peak_mb": peak_rss_mb() - baseline,
    }


def child_import_export(path: Path, db_name: str, fastest: bool) -> dict:
    _django(db_name)
    import tablib
    from import_export import fields, resources, widgets

    from vehicles.models import Vehicle

    organization = _organization("ie", path)

    class Default(resources.ModelResource):
        tags = fields.Field(attribute="tags", column_name="tags", widget=widgets.CharWidget())

        class Meta:
            model = Vehicle
            fields = ("vin", "brand", "license_plate", "nickname", "tags", "odometer_km")
            import_id_fields = ("vin",)

        def before_import_row(self, row, **kwargs):
            row["organization"] = organization.pk

        def init_instance(self, row=None):
            return Vehicle(organization_id=organization.pk)

        def get_queryset(self):
            return Vehicle.objects.filter(organization=organization)

    class Fastest(Default):
        class Meta(Default.Meta):
            use_bulk = True
            batch_size = 1000
            force_init_instance = True  # no lookup of existing rows
            skip_diff = True
            skip_unchanged = False
            report_skipped = False
            clean_model_instances = False

    baseline = start_measuring()
    started = time.perf_counter()
    dataset = tablib.Dataset().load(path.read_text(encoding="utf-8"), format="csv")
    resource = Fastest() if fastest else Default()
    result = resource.import_data(dataset, dry_run=False, raise_errors=True)
    seconds = time.perf_counter() - started
    return {
        "tool": "import-export fastest" if fastest else "import-export default",
        "rows": len(dataset),
        "created": Vehicle.objects.filter(organization=organization).count(),
        "errors": len(result.row_errors()),
        "seconds": seconds,
        "peak_mb": peak_rss_mb() - baseline,
    }


# --- parent ------------------------------------------------------------------------------------
def run_child(kind: str, path: Path, db_name: str, hm_seconds: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--file", str(path), "--db", db_name]
    cmd += ["--hm-seconds", str(hm_seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} on {path.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--hm-seconds", type=float, default=20.0)
    parser.add_argument(
        "--ie-default-rows",
        type=int,
        default=10_000,
        help="rows for django-import-export's default set-up (one row at a time: slow)",
    )
    parser.add_argument(
        "--without-import-export",
        action="store_true",
        help="FleetPortal and plain COPY only (django-import-export is slow: for profiling runs)",
    )
    parser.add_argument("--child")
    parser.add_argument("--file")
    parser.add_argument("--db")
    args = parser.parse_args()
    if args.child:
        path = Path(args.file)
        if args.child == "fleetportal":
            result = child_fleetportal(path, args.db, args.hm_seconds)
        elif args.child == "copy":
            result = child_copy(path, args.db)
        else:
            result = child_import_export(path, args.db, fastest=args.child == "ie-fastest")
        print(json.dumps(result))
        return

    from django.db import connection

    from tests.support.db import drop_throwaway_database, throwaway_database

    old = throwaway_database("bench_csv_import")
    db_name = connection.settings_dict["NAME"]
    results: dict[str, list[dict]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"fleet{args.rows}.csv"
            generate(path, args.rows)
            small = Path(tmp) / f"fleet{args.ie_default_rows}.csv"
            generate(small, args.ie_default_rows)
            plan = [
                ("plain COPY", "copy", path),
                ("fleetportal", "fleetportal", path),
                ("import-export fastest", "ie-fastest", path),
                ("import-export default", "ie-default", small),
            ]
            if args.without_import_export:
                plan = plan[:2]
            for _ in range(args.repeat):
                for label, kind, file in plan:
                    size_mb = file.stat().st_size / 1024 / 1024
                    print(f"… {label}: {file.name} ({size_mb:.1f} MB)", file=sys.stderr, flush=True)
                    result = run_child(kind, file, db_name, args.hm_seconds)
                    result["rows_per_s"] = result["rows"] / result["seconds"]
                    results.setdefault(label, []).append(result)
    finally:
        drop_throwaway_database(old)
    print_table(results, connection.vendor, args.repeat)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def print_table(results: dict[str, list[dict]], vendor: str, repeat: int) -> None:
    ceiling = _median(results["plain COPY"], "rows_per_s")
    header = f"{'':<24}{'rows':>9}{'seconds':>9}{'rows/s':>9}{'x COPY':>8}{'peak MB':>9}  notes"
    print(f"\nCSV import, preview + import ({vendor}, {os.cpu_count()} CPUs, median of {repeat})")
    print(header)
    print("-" * len(header))
    for label, runs in results.items():
        rate = _median(runs, "rows_per_s")
        notes = ""
        if label == "fleetportal":
            notes = (
                f"preview {_median(runs, 'validate_s'):.1f}s + import "
                f"{_median(runs, 'import_s'):.1f}s ({runs[0]['tasks']} tasks of "
                f"{runs[0]['batch']:,} rows); upload stored in {_median(runs, 'store_s'):.1f}s; "
                "vehicles + clearances + events, validated"
            )
        elif label == "plain COPY":
            notes = "the ceiling: vehicles only, nothing checked"
        else:
            notes = "vehicles only, no validation"
        print(
            f"{label:<24}{runs[0]['rows']:>9,}{_median(runs, 'seconds'):>9.1f}{rate:>9,.0f}"
            f"{rate / ceiling:>8.2f}{_median(runs, 'peak_mb'):>9.1f}  {notes}"
        )
    fp = results["fleetportal"]
    ours = _median(fp, "hm_vins_per_s")
    best = _median(fp, "hm_ceiling_vins_per_s")
    print(
        f"\nHM sends right after the import: {ours:,.0f} VINs/s "
        f"({fp[0]['hm_sent']:,} sent in {fp[0]['hm_calls']} calls); after an explicit ANALYZE "
        f"(the ceiling): {best:,.0f} VINs/s; ratio {ours / max(best, 1):.2f}. HM stand-in "
        "answering at once."
    )
    print(
        "peak MB = peak RSS of the run above the process's RSS before it; x COPY = rows/s "
        "divided by plain COPY's rows/s in this run."
    )


if __name__ == "__main__":
    main()
