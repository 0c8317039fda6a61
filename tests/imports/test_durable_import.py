"""Durable imports through the real parts: a real Celery worker killed with SIGKILL mid-import
(the whole worker, or only its pool child as the OOM killer does), then the reconciler's round:
the import resumes from what PostgreSQL holds and ends with every row written exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clearance.models import Clearance, ClearanceEvent, HMWork
from durable import work
from imports import reports, services
from imports.models import ImportJob, ImportRow, ImportWork
from tests.conftest import wait_for
from tests.imports.helpers import fleet_csv
from tests.support.worker import ROOT, purge_broker, wait_until_ready, worker_environment
from vehicles.models import Vehicle

pytestmark = pytest.mark.slow

ROWS = 4000


def batch_size() -> int:
    """Many short tasks, so the kill lands mid-import. The embedded filesystem broker takes
    longer per message: fewer, larger batches there."""
    from django.conf import settings

    return 400 if settings.CELERY_BROKER_URL.startswith("filesystem") else 20


def start_importer(log_path: Path, *, pool: str) -> subprocess.Popen:
    """A worker on the imports queue only, as the Procfile's importer (small batches)."""
    cmd = [sys.executable, "-m", "celery", "-A", "fleetportal", "worker", "-Q", "imports"]
    cmd += ["--concurrency", "1", "--pool", pool, "--loglevel", "INFO"]
    cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=worker_environment(
                IMPORT_BATCH_SIZE=str(batch_size()), HM_SIMULATOR_BASE_URL="http://0.0.0.0:9"
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if not wait_until_ready(process, log_path):
        process.kill()
        pytest.fail(f"importer did not start:\n{log_path.read_text()[-3000:]}")
    return process


def pool_child(parent: subprocess.Popen) -> int:
    """The pid of the prefork pool's child process (the one that runs the tasks)."""
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children").read_text().split()
    assert children, "the importer has no pool child"
    return int(children[0])


def progress(job: ImportJob) -> dict:
    return reports.import_progress(job.pk)


def ended_with_reconciler_rounds(job: ImportJob, interval: float = 5.0):
    """A predicate for wait_for: whether the import ended; meanwhile the reconciler's round
    runs every ``interval`` seconds, as beat runs it in production."""
    last_round = time.monotonic()

    def ended() -> bool:
        nonlocal last_round
        if progress(job)["status"] != "importing":
            return True
        if time.monotonic() - last_round >= interval:
            work.reconcile()
            last_round = time.monotonic()
        return False

    return ended


def start_import(organization, manager_user, credential=None) -> ImportJob:
    job = services.import_job_create(
        organization=organization,
        user=manager_user,
        upload=SimpleUploadedFile("fleet.csv", fleet_csv(ROWS)),
        credential=credential,
    )
    wait_for(
        lambda: progress(job)["status"] == ImportJob.Status.PREVIEW,
        timeout=120,
        message="the preview",
    )
    job.refresh_from_db()
    assert ImportRow.objects.filter(job=job).count() == ROWS  # validated once, staged
    services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    return job


def assert_imported_exactly_once(job: ImportJob, credential) -> None:
    job.refresh_from_db()
    assert (job.status, job.processed, job.created, job.skipped) == ("done", ROWS, ROWS, 0)
    assert Vehicle.objects.filter(organization=job.organization).count() == ROWS
    if credential is not None:
        assert job.queued_requests == ROWS
        assert Clearance.objects.filter(credential=credential).count() == ROWS
        assert ClearanceEvent.objects.filter(clearance__credential=credential).count() == ROWS
        assert HMWork.objects.filter(credential=credential, kind="send").count() == ROWS
    assert not ImportRow.objects.filter(job=job).exists()
    assert not ImportWork.objects.filter(job=job, state__in=["pending", "running"]).exists()


def killable() -> list[str]:
    """What the OOM killer can kill: the worker, and on Redis its pool's child process. The
    embedded broker's workers run threads (no child), see ``test_the_embedded_broker_...``."""
    from django.conf import settings

    return (
        ["worker"] if settings.CELERY_BROKER_URL.startswith("filesystem") else ["worker", "child"]
    )


def test_the_embedded_broker_runs_a_worker_s_tasks_in_threads():
    """Without an event loop (the filesystem transport) a prefork pool's children share one
    locked queue, and a child killed while waiting on it hangs the pool for good."""
    from django.conf import settings

    from fleetportal.celery import app

    embedded = settings.CELERY_BROKER_URL.startswith("filesystem")
    assert app.conf.worker_pool == ("threads" if embedded else "prefork")


@pytest.mark.parametrize("kill", killable())
def test_an_importer_killed_mid_import_resumes_and_writes_every_row_once(
    transactional_db, worker_manager, organization, manager_user, tmp_path, settings, kill
):
    from tests.factories import CredentialFactory

    settings.IMPORT_BATCH_SIZE = batch_size()  # as the importer's, for the page's words
    worker_manager.stop()  # no other worker may take the import meanwhile
    purge_broker()
    credential = CredentialFactory(organization=organization)
    pool = "prefork" if kill == "child" else "threads"
    importer = start_importer(tmp_path / "importer-1.log", pool=pool)
    try:
        job = start_import(organization, manager_user, credential)
        wait_for(
            lambda: 0 < progress(job)["processed"] < ROWS // 2,
            interval=0.02,
            timeout=120,
            message="the import under way",
        )
        if kill == "worker":
            os.kill(importer.pid, signal.SIGKILL)
            importer.wait(timeout=20)
        else:
            os.kill(pool_child(importer), signal.SIGKILL)
    except BaseException:
        importer.kill()
        raise
    if kill == "worker":
        stopped = progress(job)
        # What is stored says what is left, and that it is due now (nothing was lost).
        assert stopped["status"] == "importing" and 0 < stopped["processed"] < ROWS
        assert stopped["staged"] == ROWS and stopped["work"]["state"] == "pending"
        job.refresh_from_db()
        pending = reports.pending_words(job, reports.pending_work(job))
        assert pending.startswith(f"Pending: importing rows {stopped['processed'] + 1:,}")
        importer = start_importer(tmp_path / "importer-2.log", pool=pool)
        # The reconciler's round (beat runs it every RECONCILE_INTERVAL_SECONDS) wakes it,
        # unless a continuation the killed worker had queued was still in the broker and the
        # new importer took that first: then the import moves on without it.
        if not work.reconcile().get("imports.batch"):
            wait_for(
                lambda: progress(job)["processed"] > stopped["processed"],
                timeout=60,
                message="the new importer to take the queued continuation",
            )
    # A killed pool child: its message is rejected back to the queue (reject_on_worker_lost)
    # and the parent's new child takes it up again. A child killed between two batches (after
    # one committed, before it queued the next) leaves nothing to reject: the next batch is
    # due in the database and the reconciler's round wakes it, as beat does every interval.
    try:
        wait_for(
            ended_with_reconciler_rounds(job),
            timeout=180,
            message=f"the import to end\n{(tmp_path / 'importer-1.log').read_text()[-3000:]}",
        )
    finally:
        importer.kill()
        importer.wait(timeout=20)
        purge_broker()
    assert_imported_exactly_once(job, credential)
