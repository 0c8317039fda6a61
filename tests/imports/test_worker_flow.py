"""The whole import through a real Celery worker: upload -> preview -> confirm -> import ->
clearance requests sent to the simulator (over HTTP on the live server)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from clearance.models import Clearance
from imports.models import ImportJob
from tests.conftest import wait_for
from tests.imports.helpers import fleet_csv
from tests.support.simulator import simulator_credential
from vehicles.models import Vehicle

pytestmark = pytest.mark.slow


def job_status(job: ImportJob) -> str:
    job.refresh_from_db()
    return job.status


def test_upload_preview_confirm_import_through_a_real_worker(
    transactional_db, celery_worker, organization, manager_client, settings
):
    settings.IMPORT_BATCH_SIZE = 20
    credential, _, _ = simulator_credential(organization, "Import test app")
    data = fleet_csv(50, brand="sandbox") + b"BAD,bmw,,,,\n"
    response = manager_client.post(
        reverse("imports:upload"),
        {
            "file": SimpleUploadedFile("fleet.csv", data),
            "credential": str(credential.public_id),
            "check_eligibility": "on",
        },
    )
    job = ImportJob.objects.get()
    assert response.status_code == 302

    wait_for(
        lambda: job_status(job) != ImportJob.Status.VALIDATING and job.status != "uploaded",
        timeout=60,
        message=f"validation by the worker\n{celery_worker.log()[-2000:]}",
    )
    assert job.status == ImportJob.Status.PREVIEW, job.message
    assert (job.total, job.created, job.errors) == (51, 50, 1)
    # the optional eligibility check asked the simulator about the first new VINs
    assert job.eligibility["checked"] == settings.IMPORT_ELIGIBILITY_CHECK_LIMIT, job.eligibility
    assert job.eligibility["failed"] == 0, job.eligibility

    poll = manager_client.get(
        reverse("imports:job_status", args=[job.public_id]), headers={"HX-Request": "true"}
    )
    assert poll.status_code == 286  # preview reached: polling stops

    manager_client.post(reverse("imports:confirm", args=[job.public_id]), {"accept_skipped": "1"})
    wait_for(
        lambda: job_status(job) in {"done", "failed"},
        timeout=90,
        message=f"import by the worker\n{celery_worker.log()[-2000:]}",
    )
    assert job.status == ImportJob.Status.DONE, job.message
    assert (job.processed, job.created, job.errors, job.queued_requests) == (51, 50, 1, 50)
    assert Vehicle.objects.filter(organization=organization).count() == 50

    assert Clearance.objects.filter(credential=credential).count() == 50
    if connection.vendor == "postgresql":
        # The lifecycle sent the queued clearances to the simulator in batches. (On the embedded
        # SQLite the simulator, served by the same test database, cannot write while the sender
        # holds its claim transaction, so this part is only checked on PostgreSQL.)
        wait_for(
            lambda: not Clearance.objects.filter(status="queued").exists(),
            timeout=90,
            message=f"clearance requests sent\n{celery_worker.log()[-3000:]}",
        )
        statuses = set(Clearance.objects.values_list("status", flat=True))
        assert statuses <= {"pending", "approved"}, statuses

    summary = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "Import finished" in summary and "50 vehicles added" in summary

    # The same file again: nothing to import.
    manager_client.post(reverse("imports:upload"), {"file": SimpleUploadedFile("fleet.csv", data)})
    again = ImportJob.objects.exclude(pk=job.pk).get()
    wait_for(
        lambda: job_status(again) == ImportJob.Status.PREVIEW, timeout=60, message="second preview"
    )
    assert (again.created, again.skipped, again.errors) == (0, 50, 1)
