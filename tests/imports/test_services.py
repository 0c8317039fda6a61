"""Import services: preview counts, confirm rules, batch import, idempotency, resume, report."""

from __future__ import annotations

import io
from unittest import mock

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from clearance.models import Clearance, ClearanceEvent, HMWork
from imports import files, planning, reports, services, writing
from imports.models import ImportChunk, ImportJob, ImportRow
from tests.factories import CredentialFactory, VehicleFactory
from tests.imports.helpers import fleet_csv, make_vin
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def upload(organization, user, data: bytes, name="fleet.csv", **options) -> ImportJob:
    job = services.import_job_create(
        organization=organization,
        user=user,
        upload=SimpleUploadedFile(name, data, content_type="text/csv"),
        **options,
    )
    services.import_job_validate(job.pk)  # what the validate task does
    job.refresh_from_db()
    return job


def run(job: ImportJob, user, *, accept_skipped=False) -> ImportJob:
    services.import_job_confirm(job, user=user, accept_skipped=accept_skipped)
    services.import_job_run(job.pk)  # what the import task does
    job.refresh_from_db()
    return job


@pytest.fixture
def queued():
    """The lifecycle's request task, as queued after each batch commits (no broker needed)."""
    with mock.patch("clearance.tasks.request_clearances.delay") as delay:
        yield delay


def test_the_file_is_kept_in_the_database_in_chunks(organization, manager_user, settings):
    data = fleet_csv(30_000)  # ~2 MB
    job = services.import_job_create(
        organization=organization, user=manager_user, upload=SimpleUploadedFile("big.csv", data)
    )
    assert ImportChunk.objects.filter(job=job).count() == -(-len(data) // files.CHUNK_BYTES) > 1
    with files.open_job_file(job) as stream:
        assert stream.read() == data
    assert job.size == len(data) and len(job.sha256) == 64


def test_preview_counts_new_existing_and_errors(organization, manager_user):
    VehicleFactory(organization=organization, vin=make_vin(0), brand="bmw")
    data = fleet_csv(5) + b"BAD,bmw,,,,\n" + f"{make_vin(1)},bmw,,,,\n".encode()
    job = upload(organization, manager_user, data)
    assert job.status == ImportJob.Status.PREVIEW
    assert (job.total, job.created, job.updated, job.skipped, job.errors) == (7, 4, 0, 1, 2)
    assert job.error_sample[0]["row"] == 7 and job.error_sample[0]["column"] == "vin"
    assert "already appears in row 3" in job.error_sample[1]["message"]
    assert job.layout["encoding"] == "UTF-8" and job.layout["delimiter"] == "comma"
    assert Vehicle.objects.filter(organization=organization).count() == 1  # nothing written yet


def test_a_broken_file_fails_with_its_message(organization, manager_user):
    mixed = "vin;brand\nä\n".encode() + "ä\n".encode("latin-1")  # UTF-8, then Latin-1
    job = upload(organization, manager_user, mixed)
    assert job.status == ImportJob.Status.FAILED
    assert "not valid UTF-8" in job.message and "CSV UTF-8" in job.message


def test_errors_need_explicit_confirmation(organization, manager_user, queued):
    job = upload(organization, manager_user, fleet_csv(3) + b"BAD,bmw,,,,\n")
    with pytest.raises(planning.ImportRejected, match="1 row with errors will be skipped"):
        services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    assert Vehicle.objects.count() == 0
    job = run(job, manager_user, accept_skipped=True)
    assert job.status == ImportJob.Status.DONE
    assert (job.created, job.errors, job.processed) == (3, 1, 4)
    assert job.confirmed_by == manager_user


def test_import_creates_vehicles_and_queued_clearances_in_batches(
    organization, manager_user, queued, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_BATCH_SIZE = 4
    credential = CredentialFactory(organization=organization)
    job = upload(organization, manager_user, fleet_csv(10), credential=credential)
    with pytest.raises(AssertionError):
        queued.assert_called()
    with django_capture_on_commit_callbacks(execute=True):
        job = run(job, manager_user)
    assert (job.created, job.queued_requests, job.status) == (10, 10, ImportJob.Status.DONE)
    vehicle = Vehicle.objects.get(vin=make_vin(3))
    assert (vehicle.brand, vehicle.license_plate, vehicle.nickname) == ("bmw", "B-3", "Van 3")
    assert vehicle.tags == {"depot": "north"} and vehicle.odometer_km == 21
    assert set(Clearance.objects.values_list("status", flat=True)) == {"queued"}
    assert Clearance.objects.filter(credential=credential).count() == 10
    event = ClearanceEvent.objects.first()
    assert event.to_status == "queued" and event.actor == manager_user
    assert ClearanceEvent.objects.count() == 10
    # each send is durable work, written with its clearance
    sends = HMWork.objects.filter(kind=HMWork.Kind.SEND, state="pending", credential=credential)
    assert sorted(sends.values_list("clearance_id", flat=True)) == sorted(
        Clearance.objects.values_list("pk", flat=True)
    )
    assert {w.actor for w in sends} == {manager_user}
    # the lifecycle's sender is queued once per committed batch (4 + 4 + 2)
    assert [call.args for call in queued.call_args_list] == [(credential.pk,)] * 3


def test_importing_the_same_file_twice_changes_nothing(organization, manager_user, queued):
    data = fleet_csv(20)
    run(upload(organization, manager_user, data), manager_user)
    before = list(Vehicle.objects.order_by("vin").values())
    second = upload(organization, manager_user, data)
    assert (second.created, second.updated, second.skipped) == (0, 0, 20)
    with pytest.raises(planning.ImportRejected, match="nothing to import"):
        services.import_job_confirm(second, user=manager_user, accept_skipped=True)
    # the same through import_rows directly (what the command does)
    with io.BytesIO(data) as stream:
        counts = services.import_rows(stream, organization, credential=None, update_existing=True)
    assert (counts.created, counts.updated, counts.skipped) == (0, 0, 20)
    assert list(Vehicle.objects.order_by("vin").values()) == before
    assert Clearance.objects.count() == 0  # no credential: vehicles are "not requested"


def test_update_existing_changes_only_given_cells(organization, manager_user, queued):
    vin = make_vin(0)
    VehicleFactory(
        organization=organization,
        vin=vin,
        brand="bmw",
        nickname="Old",
        license_plate="KEEP",
        tags={"a": "1"},
    )
    data = f"vin,brand,nickname,license_plate,tags\n{vin},bmw,New,,b=2\n".encode()
    job = upload(organization, manager_user, data, update_existing=True)
    assert (job.created, job.updated, job.skipped) == (0, 1, 0)
    run(job, manager_user)
    vehicle = Vehicle.objects.get(vin=vin)
    assert (vehicle.nickname, vehicle.license_plate, vehicle.tags) == (
        "New",
        "KEEP",
        {"a": "1", "b": "2"},
    )
    assert not Clearance.objects.exists()  # an update never requests clearance


def test_import_without_credential_adds_vehicles_not_requested(organization, manager_user, queued):
    job = run(upload(organization, manager_user, fleet_csv(3)), manager_user)
    assert (job.created, job.queued_requests) == (3, 0)
    assert Vehicle.objects.count() == 3 and not Clearance.objects.exists()


def test_existing_vins_are_skipped_without_update(organization, manager_user):
    vin = make_vin(0)
    VehicleFactory(organization=organization, vin=vin, brand="bmw", nickname="Old")
    job = upload(organization, manager_user, f"vin,brand,nickname\n{vin},bmw,New\n".encode())
    assert (job.created, job.updated, job.skipped) == (0, 0, 1)


def test_other_organizations_vins_do_not_count(
    organization, other_organization, manager_user, queued
):
    VehicleFactory(organization=other_organization, vin=make_vin(0), brand="bmw")
    job = run(upload(organization, manager_user, fleet_csv(1)), manager_user)
    assert job.created == 1
    assert Vehicle.objects.filter(vin=make_vin(0)).count() == 2


def test_a_redelivered_import_resumes_after_the_last_batch(
    organization, manager_user, queued, settings
):
    settings.IMPORT_BATCH_SIZE = 5
    job = upload(organization, manager_user, fleet_csv(12))
    services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    real = writing.write_batch
    calls = {"n": 0}

    def crash_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    with (
        mock.patch.object(services, "write_batch", crash_on_second_batch),
        pytest.raises(RuntimeError),
    ):
        services.import_job_run(job.pk)
    job.refresh_from_db()
    assert (job.processed, job.created, job.status) == (5, 5, ImportJob.Status.IMPORTING)
    assert ImportRow.objects.filter(job=job).count() == 12  # the rest stays staged
    services.import_job_run(job.pk)  # the redelivered task
    job.refresh_from_db()
    assert (job.processed, job.created, job.status) == (12, 12, ImportJob.Status.DONE)
    assert Vehicle.objects.count() == 12
    assert not ImportRow.objects.filter(job=job).exists()  # staging emptied at the end
    services.import_job_run(job.pk)  # a late duplicate delivery does nothing
    assert Vehicle.objects.count() == 12


def test_a_vin_added_meanwhile_is_skipped_not_a_failed_import(
    organization, manager_user, queued, settings
):
    """Someone adds a VIN of the file by hand after the import started: that vehicle counts as
    already in the fleet and is written once; the import does not fail."""
    settings.IMPORT_BATCH_SIZE = 5
    job = upload(organization, manager_user, fleet_csv(12))
    services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    assert services.import_job_step(job.pk)  # the first batch
    VehicleFactory(organization=organization, vin=make_vin(7), brand="bmw")
    services.import_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert (job.processed, job.created, job.skipped) == (12, 11, 1)
    assert Vehicle.objects.filter(organization=organization).count() == 12


def test_a_failed_import_says_what_was_already_imported(organization, manager_user, manager_client):
    job = upload(organization, manager_user, fleet_csv(12))
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.FAILED,
        message="The stored file is damaged.",
        created=5,
        processed=5,
    )
    content = manager_client.get(f"/imports/{job.public_id}/").content.decode()
    assert "The stored file is damaged." in content
    assert "5 vehicles were added and 0 updated (5 of 12 rows)" in content
    assert "Importing the same file again adds only the rest." in content


def test_a_finished_import_without_application_points_to_request_clearance(
    organization, manager_user, manager_client, queued
):
    job = run(upload(organization, manager_user, fleet_csv(2)), manager_user)
    content = manager_client.get(f"/imports/{job.public_id}/").content.decode()
    assert "show as “Not requested”" in content
    assert "Queued" not in content


def test_cancel_deletes_the_stored_file(organization, manager_user):
    job = upload(organization, manager_user, fleet_csv(2))
    services.import_job_cancel(job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELED and not job.chunks.exists()
    with pytest.raises(planning.ImportRejected):
        services.import_job_cancel(job)


def test_error_report_lists_every_issue_in_file_order(organization, manager_user):
    lines = ["vin,brand,colour"] + [f"BAD{i},Trabant,red" for i in range(1000)]
    job = upload(organization, manager_user, "\n".join(lines).encode())
    assert job.errors == 1000 and len(job.error_sample) == planning.ERROR_SAMPLE_SIZE
    report = list(reports.error_report_rows(job))
    assert report[0] == ["row", "column", "level", "message", "vin"]
    assert report[1][:3] == ["1", "colour", "warning"]
    errors = [r for r in report[2:] if r[2] == "error"]
    assert len(errors) == 2000
    assert errors[-1][:2] == ["1001", "brand"]


def test_size_cap(organization, manager_user, settings):
    settings.IMPORT_MAX_UPLOAD_MB = 1
    with pytest.raises(planning.ImportRejected, match="the limit is 1 MB"):
        services.import_job_create(
            organization=organization,
            user=manager_user,
            upload=SimpleUploadedFile("big.csv", b"x" * (1024 * 1024 + 1)),
        )
    assert not ImportJob.objects.exists()


def test_eligibility_check_of_new_vins(organization, manager_user, settings):
    settings.IMPORT_ELIGIBILITY_CHECK_LIMIT = 3
    credential = CredentialFactory(organization=organization)
    client = mock.Mock()
    client.check_eligibility.side_effect = lambda vin, brand: mock.Mock(eligible=vin != make_vin(1))
    with mock.patch("imports.eligibility.hm_client_for", return_value=client):
        job = upload(
            organization,
            manager_user,
            fleet_csv(5),
            credential=credential,
            check_eligibility=True,
        )
    assert job.eligibility["checked"] == 3 and job.eligibility["eligible"] == 2
    assert job.eligibility["not_eligible"] == [
        {"row": 3, "vin": make_vin(1), "reason": "Not eligible"}
    ]


def test_files_of_old_finished_imports_are_pruned(organization, manager_user):
    from datetime import timedelta

    from django.utils import timezone

    old = upload(organization, manager_user, fleet_csv(2))
    services.import_job_cancel(old)
    done = upload(organization, manager_user, fleet_csv(2))
    ImportJob.objects.filter(pk=done.pk).update(
        status=ImportJob.Status.DONE, finished_at=timezone.now() - timedelta(days=31)
    )
    recent = upload(organization, manager_user, fleet_csv(3))  # uploading prunes
    assert not files.job_file_kept(done)
    assert files.job_file_kept(recent)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"vin,brand\r\n", "header row but no vehicles"),
        (bytes(range(256)) * 8, "binary data"),
        (b"PK\x03\x04" + bytes(500), "Excel workbook"),
        ("vin;brand\nCitroën\n".encode() + "Citroën\n".encode("latin-1"), "not valid UTF-8"),
        (b"vin;brand\n1M8GDM9AXKP042788;Citro\x81n\n", "neither UTF-8 nor Windows-1252"),
        (b"vin,brand," + b"x," * 500_000, "longer than 64 KB"),
    ],
    ids=["empty", "header-only", "binary", "xlsx", "mixed-encodings", "not-text", "1mb-line"],
)
def test_corpus_of_unusable_files_fails_the_job_with_a_message(
    organization, manager_user, data, message
):
    job = upload(organization, manager_user, data)
    assert job.status == ImportJob.Status.FAILED
    assert message in job.message


def test_corpus_of_odd_but_usable_files_reaches_the_preview(organization, manager_user):
    quoted = (
        'VIN;Make;Nickname;Tags\r\n1M8GDM9AXKP042788;VW;"Van; with\r\nnewline";"a=1;b=2"\r\n'
        'WBADT43452G296403;Mercedes;"=HYPERLINK(""x"")";\r\n'
    ).encode("utf-16")
    job = upload(organization, manager_user, quoted)
    assert (job.status, job.total, job.created, job.errors) == ("preview", 2, 2, 0)
    assert job.warnings >= 1  # the formula-like nickname
    bad = "\n".join(["vin,brand"] + [f"BAD{i},Trabant" for i in range(1000)]).encode()
    job = upload(organization, manager_user, bad)
    assert (job.status, job.total, job.created, job.errors) == ("preview", 1000, 0, 1000)


# -- review fixes: warnings on the preview, the VIN as written, stale previews, Windows-1252 ----
def wrong_check_digit(vin: str) -> str:
    from vehicles.validation import vin_check_digit

    wrong = "0" if vin_check_digit(vin) != "0" else "1"
    return vin[:8] + wrong + vin[9:]


def test_preview_keeps_the_warnings_apart_from_the_errors(organization, manager_user):
    rows = [f"{wrong_check_digit(make_vin(i, seed='1FM'))},bmw,,Van {i},," for i in range(60)]
    data = "\n".join(["vin,brand,license_plate,nickname,tags,odometer_km", *rows, "BAD,bmw,,,,"])
    job = upload(organization, manager_user, data.encode())
    assert (job.errors, job.warnings) == (1, 60)
    errors = planning.sample_issues(job, "error")
    warnings = planning.sample_issues(job, "warning")
    assert [issue["row"] for issue in errors] == [62]
    # Grouped by message over the whole file: every warning counted, the first row first.
    assert sum(issue["count"] for issue in warnings) == 60 and warnings[0]["row"] == 2
    assert "check digit" in warnings[0]["message"] and warnings[0]["column"] == "vin"


def test_an_old_sample_without_levels_counts_as_errors(organization):
    job = ImportJob(
        organization=organization, error_sample=[{"row": 2, "column": "", "message": "x"}]
    )
    assert planning.sample_issues(job, "error") == job.error_sample
    assert planning.sample_issues(job, "warning") == []


def test_error_report_gives_the_vin_as_written_when_it_is_invalid(organization, manager_user):
    data = (
        f'vin,brand\ntoo-short,bmw\n=HYPERLINK("http://evil"),bmw\n{make_vin(1).lower()},Trabant\n'
    ).encode()
    job = upload(organization, manager_user, data)
    report = list(reports.error_report_rows(job))
    vins = {row[0]: row[4] for row in report[1:]}
    assert vins == {"2": "too-short", "3": '=HYPERLINK("http://evil")', "4": make_vin(1)}
    # Downloaded, every cell is formula-safe (the same guard as the fleet export).
    from imports.exports import csv_lines

    text = "".join(csv_lines(report))
    assert "'=HYPERLINK" in text and ',"=HYPERLINK' not in text


def test_a_change_to_the_fleet_makes_the_preview_stale(
    organization, other_organization, manager_user, queued, django_capture_on_commit_callbacks
):
    job = upload(organization, manager_user, fleet_csv(3))
    assert not planning.preview_is_stale(job)
    VehicleFactory(organization=other_organization, vin=make_vin(0))
    assert not planning.preview_is_stale(job)  # another organization's fleet does not count
    vehicle = VehicleFactory(organization=organization, vin=make_vin(0))  # e.g. another import
    assert planning.preview_is_stale(job)
    with pytest.raises(planning.PreviewStale, match="Check the file again"):
        services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEW and job.confirmed_at is None
    assert Vehicle.objects.filter(organization=organization).count() == 1  # nothing imported

    with (
        mock.patch("imports.tasks.validate_import_job.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.import_job_recheck(job)
    delay.assert_called_once_with(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.UPLOADED and job.created == 0 and not job.error_sample
    services.import_job_validate(job.pk)
    job.refresh_from_db()
    assert (job.status, job.created, job.skipped) == ("preview", 2, 1)
    assert not planning.preview_is_stale(job)

    vehicle.nickname = "edited"
    vehicle.save()
    assert planning.preview_is_stale(job)
    services.import_job_recheck(job)
    services.import_job_validate(job.pk)
    job.refresh_from_db()
    vehicle.delete()
    assert planning.preview_is_stale(job)


def test_only_a_preview_can_be_checked_again(organization, manager_user, queued):
    job = run(upload(organization, manager_user, fleet_csv(2)), manager_user)
    assert job.status == ImportJob.Status.DONE
    with pytest.raises(planning.ImportRejected, match="not waiting for confirmation"):
        services.import_job_recheck(job)
    assert not planning.preview_is_stale(job)


def test_windows_1252_file_is_previewed_and_imported(organization, manager_user, queued):
    data = "VIN;Marke;Kennzeichen;Name\r\n1M8GDM9AXKP042788;Citroën;M-ÄB 12;Chloé’s Größe\r\n"
    job = upload(organization, manager_user, data.encode("cp1252"))
    assert job.status == ImportJob.Status.PREVIEW and job.created == 1
    assert job.layout["encoding"] == "Windows-1252" and job.layout["windows_1252"]
    assert job.layout["delimiter"] == "semicolon"
    run(job, manager_user)
    vehicle = Vehicle.objects.get(organization=organization)
    assert (vehicle.brand, vehicle.license_plate, vehicle.nickname) == (
        "citroen",
        "M-ÄB 12",
        "Chloé’s Größe",
    )


def test_a_passing_database_failure_waits_for_its_backoff_and_says_so(
    organization, manager_user, manager_client, queued, settings
):
    from django.db import OperationalError

    from imports import tasks
    from imports.models import ImportWork

    settings.IMPORT_BATCH_SIZE = 5
    job = upload(organization, manager_user, fleet_csv(12))
    services.import_job_confirm(job, user=manager_user, accept_skipped=False)
    with (
        mock.patch.object(services, "write_batch", side_effect=OperationalError("deadlock")),
        mock.patch("imports.tasks.run_import_job.apply_async") as woken,
    ):
        tasks.run_import_job.apply(args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.processed) == (ImportJob.Status.IMPORTING, 0)  # nothing lost
    pending = ImportWork.objects.get(job=job, kind=ImportWork.Kind.BATCH)
    assert (pending.state, pending.attempts) == ("pending", 1)
    assert "database could not be reached or was busy" in pending.last_error
    # tried again after its backoff: woken then if that is within a reconciler interval
    assert woken.call_args.kwargs["countdown"] > 0
    page = manager_client.get(f"/imports/{job.public_id}/").content.decode()
    assert "Pending: importing rows 1–5 of 12. It failed and is tried again at" in page
    assert reports.import_progress(job.pk)["work"]["last_error"] == pending.last_error
    ImportWork.objects.filter(pk=pending.pk).update(next_attempt_at=pending.created_at)
    services.import_job_run(job.pk)  # the retry goes through; the failure is forgotten
    job.refresh_from_db()
    assert (job.status, job.created) == (ImportJob.Status.DONE, 12)


def test_a_check_taken_over_after_its_lease_stops_quietly(organization, manager_user, settings):
    """A worker too slow for its lease: another one started the check again; the first stops
    at its next batch without failing the job or staging anything more."""
    from imports.models import ImportWork
    from imports.writing import Stager

    settings.IMPORT_BATCH_SIZE = 5
    job = services.import_job_create(
        organization=organization,
        user=manager_user,
        upload=SimpleUploadedFile("f.csv", fleet_csv(12)),
    )
    real = Stager.add

    def add_then_lose_the_lease(self, batch):
        real(self, batch)
        ImportWork.objects.filter(job=job).update(claim="another-worker")

    with mock.patch.object(Stager, "add", add_then_lose_the_lease):
        services.import_job_validate(job.pk)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.VALIDATING and not job.message
    assert ImportRow.objects.filter(job=job).count() == 5  # the first batch only
    assert ImportWork.objects.get(job=job).claim == "another-worker"


def test_the_preview_groups_one_message_over_the_whole_file(
    organization, manager_user, manager_client
):
    # 300 rows with the same bare-word mistake in the brand column: one line on the preview, with
    # every row counted (beyond the first 50 issues an earlier preview kept).
    rows = [f"{make_vin(i)},Trabant,,,," for i in range(300)]
    data = "\n".join(["vin,brand,license_plate,nickname,tags,odometer_km", *rows])
    job = upload(organization, manager_user, data.encode())
    errors = planning.sample_issues(job, "error")
    assert job.errors == 300 and len(errors) == 1
    assert errors[0]["count"] == 300 and errors[0]["rows"][:3] == [2, 3, 4]
    content = manager_client.get(f"/imports/{job.public_id}/").content.decode()
    assert "300 rows:" in content and "2–201, …" in content
