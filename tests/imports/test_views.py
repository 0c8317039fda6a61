"""Import pages and the CSV export, through the Django test client."""

from __future__ import annotations

import csv
import io
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imports import files, services
from imports.models import ImportJob
from tests.factories import ClearanceFactory, VehicleFactory
from tests.imports.helpers import fleet_csv, make_vin
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def post_file(client, data: bytes, name="fleet.csv", **fields):
    return client.post(
        reverse("imports:upload"), {"file": SimpleUploadedFile(name, data), **fields}
    )


def validated(job: ImportJob) -> ImportJob:
    services.import_job_validate(job.pk)
    job.refresh_from_db()
    return job


def test_upload_page(manager_client):
    response = manager_client.get(reverse("imports:upload"))
    assert response.status_code == 200
    assert b"Upload and check" in response.content and b"At most 20 MB" in response.content


def test_viewers_cannot_import(viewer_client):
    assert viewer_client.get(reverse("imports:upload")).status_code == 403
    assert post_file(viewer_client, fleet_csv(1)).status_code == 403
    assert not ImportJob.objects.exists()


def test_upload_creates_a_job_and_queues_validation(
    manager_client, organization, django_capture_on_commit_callbacks
):
    with (
        mock.patch("imports.tasks.validate_import_job.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = post_file(manager_client, fleet_csv(3), update_existing="on")
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "imports:job", args=[job.public_id]
    )
    delay.assert_called_once_with(job.pk)
    assert (
        job.organization == organization
        and job.update_existing
        and job.original_name == "fleet.csv"
    )


def test_too_large_upload_is_refused_with_a_message(manager_client, settings):
    settings.IMPORT_MAX_UPLOAD_MB = 1
    response = post_file(manager_client, b"vin,brand\n" + b"x" * (1024 * 1024))
    assert response.status_code == 200
    assert "the limit is 1 MB" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_preview_shows_counts_errors_and_needs_the_checkbox(
    manager_client, manager_user, organization
):
    post_file(manager_client, fleet_csv(2) + b"BAD,Trabant,,,,\n")
    job = validated(ImportJob.objects.get())
    page = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "Preview" in page and "rows with errors" in page
    assert "Row 4" not in page  # rows are shown in a table: row number, column, message
    assert "“Trabant” is not a brand" in page and "accept_skipped" in page
    assert reverse("imports:error_report", args=[job.public_id]) in page
    # confirming without ticking the box changes nothing
    response = manager_client.post(reverse("imports:confirm", args=[job.public_id]), follow=True)
    assert "will be skipped" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEW
    with mock.patch("imports.tasks.run_import_job.delay"):
        manager_client.post(
            reverse("imports:confirm", args=[job.public_id]), {"accept_skipped": "1"}
        )
    job.refresh_from_db()
    assert job.status == ImportJob.Status.IMPORTING


def test_status_fragment_polls_while_running_and_stops_when_done(
    manager_client, manager_user, organization
):
    post_file(manager_client, fleet_csv(2))
    job = ImportJob.objects.get()
    url = reverse("imports:job_status", args=[job.public_id])
    running = manager_client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    body = running.content.decode()
    assert body.lstrip().startswith('<div id="job-status"') and "<html" not in body
    assert 'hx-trigger="every 1s"' in body
    validated(job)
    done = manager_client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling
    assert "Preview" in done.content.decode() and "hx-trigger" not in done.content.decode()


def test_progress_bar_while_importing(manager_client, organization):
    job = ImportJob.objects.create(
        organization=organization, status=ImportJob.Status.IMPORTING, total=200, processed=50
    )
    body = manager_client.get(reverse("imports:job_status", args=[job.public_id])).content.decode()
    assert '<progress value="50" max="200"' in body and "25%" in body


def test_other_organizations_jobs_are_404(manager_client, other_organization):
    job = ImportJob.objects.create(organization=other_organization)
    for name in ("imports:job", "imports:job_status", "imports:error_report"):
        assert manager_client.get(reverse(name, args=[job.public_id])).status_code == 404
    assert manager_client.post(reverse("imports:confirm", args=[job.public_id])).status_code == 404


def test_error_report_download(manager_client):
    post_file(manager_client, fleet_csv(1) + b"=1+1,bmw,,,,\n")
    job = validated(ImportJob.objects.get())
    response = manager_client.get(reverse("imports:error_report", args=[job.public_id]))
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert 'filename="fleet-errors.csv"' in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert text.splitlines()[0] == "row,column,level,message,vin"
    assert "3,vin,error" in text and "“'=1+1” has 4 characters" not in text
    # the invalid VIN as written in the file, formula-safe like the export
    by_row = {row[0]: row for row in csv.reader(io.StringIO(text))}
    assert by_row["3"][4] == "'=1+1"


@pytest.mark.parametrize("status", ["preview", "done"])
def test_viewers_neither_see_nor_open_the_error_report(
    viewer_client, manager_client, organization, status
):
    # The report lists rows of the uploaded file, also those never imported: managers' work.
    job = ImportJob.objects.create(organization=organization, status=status, errors=1)
    job.chunks.create(index=0, data=fleet_csv(1) + b"BAD,bmw,,,,\n")
    report_url = reverse("imports:error_report", args=[job.public_id])
    page = viewer_client.get(reverse("imports:job", args=[job.public_id]))
    assert page.status_code == 200 and report_url not in page.content.decode()
    assert viewer_client.get(report_url).status_code == 403
    manager_page = manager_client.get(reverse("imports:job", args=[job.public_id]))
    assert report_url in manager_page.content.decode()
    assert manager_client.get(report_url).status_code == 200


def test_export_is_streamed_filtered_and_formula_safe(
    viewer_client, organization, other_organization
):
    ClearanceFactory(
        vehicle=VehicleFactory(
            organization=organization,
            vin=make_vin(1),
            brand="bmw",
            nickname="=cmd|' /C calc'!A0",
            tags={"a": "1"},
        ),
    )
    VehicleFactory(organization=organization, vin=make_vin(2), brand="audi", license_plate="-12")
    VehicleFactory(organization=other_organization, vin=make_vin(3), brand="bmw")
    response = viewer_client.get(reverse("imports:export"))
    assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[0] == "vin,brand,license_plate,nickname,tags,odometer_km,status,status_changed_at"
    assert len(lines) == 3
    rows = {row[0]: row for row in csv.reader(io.StringIO(text))}
    assert rows[make_vin(1)][1:7] == ["bmw", "", "'=cmd|' /C calc'!A0", "a=1", "", "queued"]
    assert rows[make_vin(2)] == [make_vin(2), "audi", "'-12", "", "", "", "", ""]
    filtered = viewer_client.get(reverse("imports:export"), {"brand": "audi"})
    assert len(b"".join(filtered.streaming_content).decode().splitlines()) == 2


def test_exported_file_imports_back_unchanged(manager_client, organization, other_organization):
    VehicleFactory(
        organization=organization,
        vin=make_vin(1),
        brand="mercedes-benz",
        nickname="=1+2",
        license_plate="-5",
        tags={"k": "v", "x": "y"},
    )
    exported = b"".join(manager_client.get(reverse("imports:export")).streaming_content)
    post_file(manager_client, exported, name="export.csv")
    job = validated(ImportJob.objects.get())
    assert (job.total, job.skipped, job.errors) == (1, 1, 0)
    with files.open_job_file(job) as stream:
        counts = services.import_rows(
            stream, other_organization, credential=None, update_existing=False
        )
    copy = Vehicle.objects.get(organization=other_organization)
    assert counts.created == 1
    assert (copy.nickname, copy.license_plate, copy.tags, copy.brand) == (
        "=1+2",
        "-5",
        {"k": "v", "x": "y"},
        "mercedes-benz",
    )


def test_admin_lists_import_jobs(client, organization, manager_user, admin_user):
    job = ImportJob.objects.create(
        organization=organization,
        created_by=manager_user,
        original_name="fleet.csv",
        status=ImportJob.Status.PREVIEW,
        errors=1,
        error_sample=[{"row": 3, "column": "vin", "message": "The VIN is missing."}],
    )
    client.force_login(admin_user)
    listing = client.get(reverse("admin:imports_importjob_changelist"))
    assert listing.status_code == 200 and b"fleet.csv" in listing.content
    detail = client.get(reverse("admin:imports_importjob_change", args=[job.pk]))
    assert detail.status_code == 200 and b"The VIN is missing." in detail.content
    client.post(
        reverse("admin:imports_importjob_changelist"),
        {"action": "cancel_jobs", "_selected_action": [job.pk]},
    )
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELED


def test_preview_lists_the_first_warnings_on_screen(manager_client):
    from vehicles.validation import vin_check_digit

    vin = "1M8GDM9AXKP042788"  # a valid check digit
    wrong = vin[:8] + ("0" if vin_check_digit(vin) != "0" else "1") + vin[9:]
    data = f"vin,brand,nickname\n{wrong},bmw,\n{vin},bmw,=SUM(A1)\nBAD,bmw,\n"
    post_file(manager_client, data.encode())
    job = validated(ImportJob.objects.get())
    assert (job.errors, job.warnings) == (1, 2)
    page = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "<h3>Errors</h3>" in page and "<h3>Warnings</h3>" in page
    errors, warnings = page.split("<h3>Warnings</h3>")
    assert "The VIN “BAD” has 3 characters" in errors and "check digit" not in errors
    assert "<td>2</td><td>vin</td>" in warnings and "check digit" in warnings
    assert (
        "<td>3</td><td>nickname</td>" in warnings and "looks like a spreadsheet formula" in warnings
    )


def test_preview_says_the_file_was_read_as_windows_1252(manager_client):
    data = "VIN;Marke;Name\r\n1M8GDM9AXKP042788;Citroën;Chloé\r\n".encode("cp1252")
    post_file(manager_client, data)
    job = validated(ImportJob.objects.get())
    page = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "Windows-1252, semicolon separated" in page
    assert "it was read as <strong>Windows-1252</strong>" in page and "CSV UTF-8" in page
    post_file(manager_client, fleet_csv(1))
    utf8 = validated(ImportJob.objects.exclude(pk=job.pk).get())
    page = manager_client.get(reverse("imports:job", args=[utf8.public_id])).content.decode()
    assert "UTF-8, comma separated" in page and "Windows-1252" not in page


def test_a_stale_preview_offers_to_check_the_file_again(
    manager_client, viewer_client, organization, django_capture_on_commit_callbacks
):
    post_file(manager_client, fleet_csv(3))
    job = validated(ImportJob.objects.get())
    url = reverse("imports:job", args=[job.public_id])
    assert "Import 3 new vehicles" in manager_client.get(url).content.decode()
    VehicleFactory(organization=organization, vin=make_vin(0))  # another import added one
    page = manager_client.get(url).content.decode()
    assert "The fleet changed since this file was checked" in page
    assert "Import 3 new vehicles" not in page and "Check the file again" in page
    with mock.patch("imports.tasks.run_import_job.delay") as run_delay:
        response = manager_client.post(reverse("imports:confirm", args=[job.public_id]))
    assert response.status_code == 302 and not run_delay.called
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEW and Vehicle.objects.count() == 1
    recheck = reverse("imports:recheck", args=[job.public_id])
    assert viewer_client.post(recheck).status_code == 403
    with (
        mock.patch("imports.tasks.validate_import_job.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = manager_client.post(recheck)
    assert response.status_code == 302 and response["Location"] == url
    delay.assert_called_once_with(job.pk)
    assert "Checking the file" in manager_client.get(url).content.decode()
    validated(job)
    page = manager_client.get(url).content.decode()
    assert "Import 2 new vehicles" in page and "The fleet changed" not in page


def test_an_upload_the_task_queue_cannot_take_fails_in_words(
    manager_client, django_capture_on_commit_callbacks
):
    with (
        mock.patch(
            "imports.tasks.validate_import_job.delay", side_effect=ConnectionError("broker down")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = post_file(manager_client, fleet_csv(3))
    job = ImportJob.objects.get()
    assert response.status_code == 302  # the job page, not an error page
    assert job.status == ImportJob.Status.FAILED
    assert "task queue is unreachable" in job.message
    page = manager_client.get(response["Location"]).content.decode()
    assert "task queue is unreachable" in page
