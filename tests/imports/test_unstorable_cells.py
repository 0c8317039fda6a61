"""Characters the database cannot store (NUL, lone surrogates) are row errors on the preview,
wherever they are in the file; an import that fails part-way keeps whole batches only and says
what it imported (job page and command)."""

from __future__ import annotations

import codecs
import io
import json
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DataError
from django.urls import reverse

from imports import planning, services, tasks, writing
from imports.encoding import SNIFF_BYTES
from imports.models import ImportJob
from imports.parse import open_fleet_csv
from imports.rows import RowValidator
from tests.imports.helpers import fleet_csv, make_vin
from tests.imports.test_services import run, upload
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued():
    with mock.patch("clearance.tasks.request_clearances.delay") as delay:
        yield delay


def _stored_as_json(value) -> str:
    text = json.dumps(value)
    assert "\\u0000" not in text and "\x00" not in text
    return text


def test_nul_in_a_cell_past_the_first_64_kb_is_a_row_error_and_the_rest_imports(
    organization, manager_user, queued
):
    data = fleet_csv(2000) + f"{make_vin(2000)},bmw,B-1,Van\x00 2000,,\r\n".encode()
    assert len(data) > SNIFF_BYTES and data.index(b"\x00") > SNIFF_BYTES
    job = upload(organization, manager_user, data)
    assert job.status == ImportJob.Status.PREVIEW, job.message
    assert (job.total, job.created, job.errors) == (2001, 2000, 1)
    [error] = planning.sample_issues(job, "error")
    assert error["row"] == 2002 and error["column"] == "nickname"
    assert "NUL character" in error["message"] and "Remove it" in error["message"]
    _stored_as_json(job.error_sample)

    job = run(job, manager_user, accept_skipped=True)
    assert job.status == ImportJob.Status.DONE, job.message
    assert (job.processed, job.created, job.errors) == (2001, 2000, 1)
    assert Vehicle.objects.filter(organization=organization).count() == 2000
    assert not Vehicle.objects.filter(vin=make_vin(2000)).exists()


def test_a_stray_nul_near_the_top_is_a_row_error_not_a_binary_file(organization, manager_user):
    data = fleet_csv(300) + f"{make_vin(300)},bmw,B-\x00,,,\r\n".encode()
    job = upload(organization, manager_user, data)
    assert job.status == ImportJob.Status.PREVIEW, job.message
    assert (job.created, job.errors) == (300, 1)
    assert job.error_sample[0]["column"] == "license_plate"


@pytest.mark.parametrize(
    "column", ["vin", "brand", "license_plate", "nickname", "tags", "odometer_km"]
)
def test_every_column_names_its_own_unstorable_cell_without_quoting_it(column):
    cells = {
        "vin": make_vin(1000),
        "brand": "bmw",
        "license_plate": "B-1",
        "nickname": "Van",
        "tags": "depot=north",
        "odometer_km": "12",
    }
    cells[column] = cells[column][:2] + "\x00" + cells[column][2:]
    data = fleet_csv(50) + (",".join(cells.values()) + "\r\n").encode()
    csv_file = open_fleet_csv(io.BytesIO(data))
    *_, row = map(RowValidator(csv_file.layout).validate, csv_file.rows())
    assert [issue.column for issue in row.errors] == [column]
    assert "NUL character" in row.errors[0].message
    assert "\x00" not in row.errors[0].message and "\x00" not in row.source_vin


def test_utf16_file_with_a_nul_character_and_a_nul_in_a_header(organization, manager_user):
    text = f"vin,brand,no\x00te\r\n{make_vin(1)},bmw,x\r\n{make_vin(2)},bm\x00w,x\r\n"
    job = upload(organization, manager_user, codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    assert job.status == ImportJob.Status.PREVIEW, job.message
    assert (job.created, job.errors) == (1, 1)
    assert job.error_sample[0]["column"] == "brand"
    assert job.layout["unknown_columns"] == ["no\ufffdte"]  # stored, shown readable
    _stored_as_json([job.error_sample, job.layout])


def test_dry_run_of_the_command_counts_the_nul_row(tmp_path, organization):
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(2000) + f"{make_vin(2000)},bmw,,x\x00,,\r\n".encode())
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 row"):
        call_command("vehicles_import", str(path), "--org", "acme", "--dry-run", stdout=out)
    assert "rows with errors: 1" in out.getvalue()
    assert "Row 2002, nickname: This cell contains a NUL character" in out.getvalue()


# --- an import failing part-way --------------------------------------------------------------

_write_batch = writing.write_batch


def _failing_on_batch(number: int):
    """write_batch that fails on the ``number``-th batch after its vehicles were inserted."""
    calls = {"n": 0}

    def write(job, **kwargs):
        calls["n"] += 1
        counts = _write_batch(job, **kwargs)
        if calls["n"] == number:
            assert counts.created  # inserted, uncommitted
            raise DataError("value refused by the database")
        return counts

    return write


def run_tasks(job) -> None:
    """The import task as workers run it, one batch per task, until the job ends."""
    for _ in range(100):
        tasks.run_import_job.apply(args=[job.pk])
        job.refresh_from_db()
        if job.status != ImportJob.Status.IMPORTING:
            return


def test_a_job_failing_in_its_second_batch_keeps_the_first_whole_and_says_so(
    organization, manager_user, manager_client, settings, queued
):
    settings.IMPORT_BATCH_SIZE = 500
    job = upload(organization, manager_user, fleet_csv(1500))
    services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    with mock.patch.object(services, "write_batch", _failing_on_batch(2)):
        # The task as the worker runs it: its on_failure marks the job failed.
        run_tasks(job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED
    assert (job.processed, job.created) == (500, 500)
    vins = set(Vehicle.objects.values_list("vin", flat=True))
    assert vins == {make_vin(i) for i in range(500)}  # batch 1 whole, nothing of batch 2

    page = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "The import stopped unexpectedly" in page
    assert "Before it stopped, 500 vehicles were added and 0 updated (500 of 1500 rows)" in page
    assert "Nothing of the rows after them was saved" in page


def test_a_job_failing_in_its_first_batch_says_nothing_was_imported(
    organization, manager_user, manager_client, queued
):
    job = upload(organization, manager_user, fleet_csv(10))
    services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    with mock.patch.object(services, "write_batch", _failing_on_batch(1)):
        run_tasks(job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and not Vehicle.objects.exists()
    page = manager_client.get(reverse("imports:job", args=[job.public_id])).content.decode()
    assert "Nothing was imported." in page


@pytest.mark.django_db(transaction=True)  # the command learns of each batch's commit
def test_the_command_failing_in_its_third_batch_reports_the_two_it_kept(
    tmp_path, organization, settings
):
    settings.IMPORT_BATCH_SIZE = 400
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(1000))
    with (
        mock.patch.object(services, "write_batch", _failing_on_batch(3)),
        pytest.raises(CommandError) as excinfo,
    ):
        call_command("vehicles_import", str(path), "--org", "acme", stdout=io.StringIO())
    message = str(excinfo.value)
    assert "The import stopped: DataError: value refused by the database." in message
    assert (
        "Imported before it stopped: 800 added, 0 updated (the first 800 of 1000 rows)" in message
    )
    assert "running the same command again imports the rest" in message
    assert Vehicle.objects.count() == 800

    # Running it again imports the rest, as the message says.
    out = io.StringIO()
    call_command("vehicles_import", str(path), "--org", "acme", stdout=out)
    assert "Imported: 200 added" in out.getvalue() and Vehicle.objects.count() == 1000


@pytest.mark.django_db(transaction=True)
def test_the_command_failing_in_its_first_batch_says_nothing_was_imported(tmp_path, organization):
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(3))
    with (
        mock.patch.object(services, "write_batch", _failing_on_batch(1)),
        pytest.raises(CommandError, match="Nothing was imported"),
    ):
        call_command("vehicles_import", str(path), "--org", "acme", stdout=io.StringIO())
    assert not Vehicle.objects.exists()
