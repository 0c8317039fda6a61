"""Download headers: a file name taken from an upload is quoted and escaped, never able to add
parameters of its own to Content-Disposition (a second ``filename*`` that renames the file)."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from django.urls import reverse

from imports import services
from imports.models import ImportJob
from tests.imports.helpers import fleet_csv

pytestmark = pytest.mark.django_db

HOSTILE = "a\\\"b; filename*=UTF-8''evil.html; x=.csv"  # as typed: a\"b; filename*=…


def disposition(response) -> list[tuple[str, str]]:
    """The header's parameters as a mail/HTTP parser reads them."""
    message = EmailMessage()
    message["Content-Disposition"] = response["Content-Disposition"]
    return message.get_params(header="content-disposition")


def multipart_upload(client, filename: str, data: bytes):
    """An upload as curl sends it: the file name in a quoted string, quotes escaped."""
    boundary = "----fleetportal-test-boundary"
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.generic(
        "POST",
        reverse("imports:upload"),
        body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def test_an_uploaded_file_name_cannot_rename_the_error_report(manager_client):
    response = multipart_upload(manager_client, HOSTILE, fleet_csv(1) + b"BAD,bmw,,,,\n")
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert "filename*=" in job.original_name  # stored as sent (minus any path)
    services.import_job_validate(job.pk)
    report = manager_client.get(reverse("imports:error_report", args=[job.public_id]))
    stem = job.original_name.rsplit(".", 1)[0]
    assert disposition(report) == [("attachment", ""), ("filename", f"{stem}-errors.csv")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("\"; filename*=UTF-8''evil.html; x=.csv", "\"; filename*=UTF-8''evil.html; x=-errors.csv"),
        ("Flotte März.csv", "Flotte März-errors.csv"),  # RFC 5987 (filename*=utf-8''…)
        ("fleet.csv", "fleet-errors.csv"),
    ],
)
def test_every_stored_name_gives_exactly_one_file_name(
    manager_client, organization, name, expected
):
    job = ImportJob.objects.create(organization=organization, original_name=name)
    job.chunks.create(index=0, data=fleet_csv(1) + b"BAD,bmw,,,,\n")
    report = manager_client.get(reverse("imports:error_report", args=[job.public_id]))
    assert disposition(report) == [("attachment", ""), ("filename", expected)]
    if name == "fleet.csv":
        assert report["Content-Disposition"] == 'attachment; filename="fleet-errors.csv"'


def test_the_fleet_export_header_is_built_the_same_way(viewer_client):
    response = viewer_client.get(reverse("imports:export"), {"q": 'x"; filename*=a'})
    params = disposition(response)
    assert [key for key, _ in params] == ["attachment", "filename"]
    assert params[1][1].startswith("acme-fleet-search-x") and params[1][1].endswith(".csv")
