"""Benchmark: webhooks and import batches flowing on the embedded defaults (issue 17 item 8).

    python bench/embedded.py [--webhooks 1000] [--rows 2000] [--batch 10]

The embedded defaults are what runs without DATABASE_URL, CELERY_BROKER_URL and CACHE_URL:
SQLite, the filesystem broker (fleetportal/broker.py) and the file cache. This script drops
those three variables and runs in a scratch FLEETPORTAL_VAR_DIR of its own (database, broker
folder, cache), whatever the caller's environment says. The workers are real Celery workers
started as the Procfile starts them (on the embedded defaults their pool is threads, see
settings.py): ``worker`` (concurrency 2) for the webhooks, ``importer`` (concurrency 1, queue
``imports``) for the import; the simulated HM is served by
gunicorn on loopback (2 processes x 4 threads), which also receives the webhooks.

* webhooks: ``--webhooks`` signed "approved" webhooks, each for its own pending vehicle that HM
  has approved, POSTed by 4 client threads while the worker runs; measured from the first POST
  until every one is stored, confirmed with HM and the vehicle approved. The ceiling: the same
  webhooks stored through the same gunicorn with no worker, then confirmed by calling the
  confirmation task's body in this process until nothing is left (no broker, no polling).
* import batches: a CSV import of ``--rows`` rows in batches of ``--batch`` (one task each, each
  waking the next), from the confirmation until the import is done. The ceiling: the same
  import's batches run one after another in this process (no broker, no polling).

Printed: each figure beside its ceiling, and the checks (every webhook stored once and
confirmed, every vehicle approved, every row imported).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
EXTERNAL = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
SCRATCH = "FLEETPORTAL_BENCH_EMBEDDED"


def embedded_environment() -> None:
    """Run again without the external services, in a scratch folder (once)."""
    if os.environ.get(SCRATCH):
        return
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
    scratch = tempfile.mkdtemp(prefix="fleetportal-embedded-")
    env.update(
        {
            SCRATCH: "1",
            "FLEETPORTAL_VAR_DIR": scratch,
            "DJANGO_SETTINGS_MODULE": "fleetportal.settings_test",
            "DJANGO_DEBUG": "0",
        }
    )
    try:
        code = subprocess.call([sys.executable, __file__, *sys.argv[1:]], env=env)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    raise SystemExit(code)


def wait(check, what: str, timeout: float = 600) -> float:
    """Seconds until ``check()`` holds (polled every 20 ms)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"embedded bench: {what} not within {timeout:.0f} s")
        time.sleep(0.02)
    return time.perf_counter() - started


@contextmanager
def procfile_worker(
    name: str, queues: str, concurrency: int, loglevel: str = "WARNING", **env: str
):
    """A Celery worker as the Procfile starts it (prefork), on this database and broker."""
    from django.conf import settings

    from tests.support.worker import worker_environment

    log_path = settings.VAR_DIR / f"embedded-{name}.log"
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "fleetportal",
        "worker",
        "-Q",
        queues,
        "-n",
        f"{name}@%h",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=worker_environment(LOG_LEVEL="WARNING", **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # "ready." is logged at INFO: wait for the process to be up by its log's banner instead.
        deadline = time.monotonic() + 60
        while "[queues]" not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(1)  # the pool starts after the banner
        process.log_path = log_path  # type: ignore[attr-defined]
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


# --- webhooks ------------------------------------------------------------------------------------
def webhook_fleet(n: int, tag: str):
    """(credential, secret, vins): n pending vehicles that the simulated HM has approved."""
    from lifecycle import pending_fleet_hm_has

    from organizations.models import Organization
    from simulator import services as sim

    app, secrets = sim.create_app(f"Embedded {tag}", approval_delay_seconds=5)
    org = Organization.objects.create(name=f"Embedded {tag}", slug=f"embedded-{tag}")
    vins = [f"2HMEMB{tag[:1].upper()}{i:010d}" for i in range(n)]
    credential, secret, _ = pending_fleet_hm_has(
        org, tag, vins, app=app, secrets=secrets, batch_size=500
    )
    return credential, secret, vins


def post_webhooks(url: str, credential, secret: str, vins: list[str]) -> list[int]:
    """POST one signed "approved" webhook per VIN from 4 client threads; the answers' codes."""
    parts = urlsplit(url)
    local = threading.local()
    path = f"/webhooks/high-mobility/{credential.public_id}/"

    def post(vin: str) -> int:
        body = json.dumps({"vehicle": {"vin": vin}, "event": {"action": "approved"}}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-HM-Delivery": str(uuid.uuid4()),
            "X-HM-Event": "fleet_clearance_changed",
            "X-HM-Signature-256": "sha256="
            + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        }
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(
            parts.hostname, parts.port, timeout=60
        )
        local.conn = conn
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(post, vins))


def bench_webhooks(n: int) -> dict:
    from django.conf import settings
    from lifecycle import gunicorn

    from clearance.models import Clearance, WebhookDelivery
    from clearance.services import webhooks
    from simulator import clock as sim_clock
    from tests.support.worker import purge_broker

    sim_clock.reset()
    result: dict = {"n": n}
    env = {"LOG_LEVEL": "WARNING"}
    with gunicorn(workers=2, extra_env=env) as url:
        settings.HM_SIMULATOR_BASE_URL = f"{url}/simulator"
        # Ceiling: stored with no worker running, then confirmed in this process.
        credential, secret, vins = webhook_fleet(n, "ceiling")
        started = time.perf_counter()
        codes = post_webhooks(url, credential, secret, vins)
        stored = time.perf_counter()
        purge_broker()  # the confirmations it queued: done here instead
        while webhooks.confirm_webhooks(credential.pk).deliveries:
            pass
        result["ceiling_seconds"] = time.perf_counter() - started
        result["ceiling_store_seconds"] = stored - started
        result["ceiling_ok"] = (
            codes.count(200) == n
            and not Clearance.objects.filter(credential=credential, status="pending").exists()
        )

        # Ours: the Procfile's worker running while the webhooks come in.
        credential, secret, vins = webhook_fleet(n, "worker")
        with procfile_worker(
            "worker",
            "webhooks,hm,telemetry,default,simulator,notifications",
            2,
            SITE_URL=url,
            HM_SIMULATOR_BASE_URL=f"{url}/simulator",
        ):
            started = time.perf_counter()
            codes = post_webhooks(url, credential, secret, vins)
            result["store_seconds"] = time.perf_counter() - started
            pending = Clearance.objects.filter(credential=credential, status="pending")
            unconfirmed = WebhookDelivery.objects.filter(
                credential=credential, processed_at__isnull=True
            )
            wait(lambda: not pending.exists() and not unconfirmed.exists(), "confirmations")
            result["seconds"] = time.perf_counter() - started
        result["ok"] = codes.count(200) == n
        result["stored"] = WebhookDelivery.objects.filter(credential=credential).count()
        result["approved"] = Clearance.objects.filter(
            credential=credential, status="approved"
        ).count()
        result["list_calls"] = (
            WebhookDelivery.objects.filter(credential=credential)
            .values("processed_at")
            .distinct()
            .count()
        )
    return result


# --- wakers ------------------------------------------------------------------------------------
def bench_wakers(n: int) -> dict:
    """``n`` webhook-confirmation wakers with nothing due (each claims nothing and returns): the
    flow of short tasks through the broker to the Procfile's worker."""
    from clearance import tasks
    from clearance.models import Credential
    from organizations.models import Organization

    org = Organization.objects.create(name="Embedded wakers", slug="embedded-wakers")
    credential = Credential.objects.create(
        organization=org, name="wakers", environment=Credential.Environment.SIMULATOR
    )
    started = time.perf_counter()
    for _ in range(n):
        tasks.confirm_webhooks.run(credential.pk)
    result: dict = {"n": n, "ceiling_seconds": time.perf_counter() - started}
    queues = "webhooks,hm,telemetry,default,simulator,notifications"
    with procfile_worker("wakers", queues, 2, loglevel="INFO") as worker:
        log = worker.log_path
        started = time.perf_counter()
        for _ in range(n):
            tasks.confirm_webhooks.delay(credential.pk)
        result["sent_seconds"] = time.perf_counter() - started

        def done() -> int:
            return log.read_text(errors="replace").count("confirm_webhooks[") // 2

        wait(lambda: done() >= n, "the wakers")
        result["seconds"] = time.perf_counter() - started
        result["ok"] = done() == n
    return result


# --- import batches -----------------------------------------------------------------------------
def start_import(rows: int, tag: str, folder: Path):
    """A CSV of ``rows`` rows uploaded and checked (the preview); returns the job."""
    from csv_import import generate
    from django.core.files.uploadedfile import UploadedFile

    from imports import services
    from imports.models import ImportJob
    from organizations.models import Organization

    path = folder / f"{tag}.csv"
    generate(path, rows)
    org = Organization.objects.create(name=f"Import {tag}", slug=f"import-{tag}")
    with path.open("rb") as stream:
        upload = UploadedFile(stream, name=path.name, size=path.stat().st_size)
        job = services.import_job_create(organization=org, user=None, upload=upload)
    return job, ImportJob


def bench_import(rows: int, batch: int) -> dict:
    from unittest import mock

    from django.conf import settings

    from imports import services
    from tests.support.worker import purge_broker

    settings.IMPORT_BATCH_SIZE = batch
    batches = -(-rows // batch)
    result: dict = {"rows": rows, "batch": batch, "batches": batches}
    folder = settings.VAR_DIR

    # Ceiling: the batches one after another in this process.
    with (
        mock.patch("imports.tasks.validate_import_job.delay"),
        mock.patch("imports.tasks.run_import_job.delay"),
    ):
        job, ImportJob = start_import(rows, "ceiling", folder)
        services.import_job_validate(job.pk)
        job.refresh_from_db()
        started = time.perf_counter()
        services.import_job_confirm(job, user=None, accept_skipped=True)
        while services.import_job_step(job.pk):
            pass
        result["ceiling_seconds"] = time.perf_counter() - started
    job.refresh_from_db()
    result["ceiling_ok"] = job.status == ImportJob.Status.DONE
    ceiling_processed = job.processed
    purge_broker()

    # Ours: the Procfile's importer takes each batch as a task of its own.
    with procfile_worker("importer", "imports", 1, IMPORT_BATCH_SIZE=str(batch)):
        job, ImportJob = start_import(rows, "worker", folder)
        wait(lambda: ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.PREVIEW, "check")
        job.refresh_from_db()
        started = time.perf_counter()
        services.import_job_confirm(job, user=None, accept_skipped=True)
        wait(lambda: ImportJob.objects.get(pk=job.pk).status == ImportJob.Status.DONE, "import")
        result["seconds"] = time.perf_counter() - started
    job.refresh_from_db()
    result["ok"] = job.status == ImportJob.Status.DONE and job.processed == ceiling_processed
    result["processed"] = job.processed
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wakers", type=int, default=500)
    parser.add_argument("--webhooks", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10, help="rows per import batch (task)")
    parser.add_argument("--only", default="wakers,webhooks,import", help="parts to run")
    args = parser.parse_args()
    only = set(args.only.split(","))
    embedded_environment()

    import report
    from lifecycle import setup_django, teardown

    old = setup_django("bench_embedded")
    from django.conf import settings
    from django.db import connection

    try:
        assert connection.vendor == "sqlite", connection.vendor
        assert settings.CELERY_BROKER_URL == "filesystem://", settings.CELERY_BROKER_URL
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        wakers = bench_wakers(args.wakers) if "wakers" in only else None
        hooks = bench_webhooks(args.webhooks) if "webhooks" in only else None
        imports = bench_import(args.rows, args.batch) if "import" in only else None
    finally:
        teardown(old)

    print(
        f"\nEmbedded defaults: SQLite, filesystem broker (polling every "
        f"{options.get('busy_polling_interval')} s while busy, {options.get('polling_interval')} s "
        f"idle), {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f})"
    )
    checks = []
    if wakers:
        print(
            f"wakers: {wakers['n']} queued in {wakers['sent_seconds']:.1f} s, all run after "
            f"{wakers['seconds']:.1f} s (ceiling: run in-process in "
            f"{wakers['ceiling_seconds']:.1f} s)"
        )
        report.row(
            "embedded-wakers",
            wakers["n"] / wakers["seconds"],
            wakers["n"] / wakers["ceiling_seconds"],
            "tasks/s",
            "≥ 50/s",
            note="short tasks (a webhook confirmation with nothing due), worker of concurrency 2",
        )
        checks.append(("every waker ran once", wakers["ok"]))
    if hooks:
        n = hooks["n"]
        print(
            f"webhooks: {n} stored in {hooks['store_seconds']:.1f} s, all confirmed and approved "
            f"after {hooks['seconds']:.1f} s in {hooks['list_calls']} HM list calls "
            f"(ceiling: stored in {hooks['ceiling_store_seconds']:.1f} s, "
            f"confirmed after {hooks['ceiling_seconds']:.1f} s)"
        )
        report.row(
            "embedded-webhooks",
            n / hooks["seconds"],
            n / hooks["ceiling_seconds"],
            "webhooks/s",
            "≥ 50/s",
            note="stored, confirmed with HM and applied",
        )
        checks += [
            ("webhooks answered 200", hooks["ok"]),
            ("webhooks stored once", hooks["stored"] == n),
            ("vehicles approved", hooks["approved"] == n),
            ("ceiling run complete", hooks["ceiling_ok"]),
        ]
    if imports:
        print(
            f"import: {imports['rows']} rows ({imports['processed']} imported) in "
            f"{imports['batches']} batches of {imports['batch']} in {imports['seconds']:.1f} s "
            f"(ceiling {imports['ceiling_seconds']:.1f} s)"
        )
        report.row(
            "embedded-import-batches",
            imports["batches"] / imports["seconds"],
            imports["batches"] / imports["ceiling_seconds"],
            "batches/s",
            "≥ 50/s",
            note=f"{imports['batch']} rows per batch, one task each",
        )
        checks += [
            ("ceiling import done", imports["ceiling_ok"]),
            ("import done, same rows", imports["ok"]),
        ]
    for name, ok in checks:
        print(f"{name:<28}{'ok' if ok else 'FAILED'}")
    if not all(ok for _, ok in checks):
        raise SystemExit("embedded bench: a check failed")


if __name__ == "__main__":
    main()
