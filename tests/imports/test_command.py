"""manage.py vehicles_import: same validation and summary on the terminal, exit codes."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from clearance.models import Clearance
from tests.factories import CredentialFactory
from tests.imports.helpers import fleet_csv
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def command(*args) -> str:
    out = io.StringIO()
    call_command("vehicles_import", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_dry_run_of_a_clean_file_exits_0_and_changes_nothing(tmp_path, organization):
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(5))
    out = command(str(path), "--org", "acme", "--dry-run")
    assert "New: 5" in out and "Dry run: nothing was changed." in out
    assert not Vehicle.objects.exists()


def test_dry_run_with_errors_exits_1_and_lists_them(tmp_path, organization):
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(2) + b"BAD,bmw,,,,\n")
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("vehicles_import", str(path), "--org", "acme", "--dry-run", stdout=out)
    assert excinfo.value.returncode == 1 and "1 row(s) have errors" in str(excinfo.value)
    assert "Row 4, vin: The VIN “BAD” has 3 characters" in out.getvalue()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "Cannot read"), (b"", "The file is empty"), (b"\x00\x01binary", "binary data")],
)
def test_unreadable_files_exit_1(tmp_path, organization, content, message):
    path = tmp_path / "fleet.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CommandError, match=message) as excinfo:
        command(str(path), "--org", "acme")
    assert excinfo.value.returncode == 1


def test_import_with_credential_then_again(tmp_path, organization):
    credential = CredentialFactory(organization=organization, name="Main app")
    CredentialFactory(organization=organization, name="Other app")
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(4) + b"BAD,bmw,,,,\n")
    out = command(str(path), "--org", "acme", "--credential", "Main app")
    assert "Imported: 4 added, 0 updated, 0 skipped, 1 row(s) with errors not imported" in out
    assert Clearance.objects.filter(credential=credential, status="queued").count() == 4
    again = command(str(path), "--org", "acme", "--update-existing")
    assert "Nothing to import" in again
    assert Vehicle.objects.count() == 4


def test_unknown_org_or_credential(tmp_path, organization):
    path = tmp_path / "fleet.csv"
    path.write_bytes(fleet_csv(1))
    with pytest.raises(CommandError, match="No organization"):
        command(str(path), "--org", "nope")
    with pytest.raises(CommandError, match="No HM application named “x”"):
        command(str(path), "--org", "acme", "--credential", "x")


def test_standard_input_is_read_once_and_imported(monkeypatch, organization):
    # The command reads the file twice (plan, then import); a pipe can only be read once.
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(fleet_csv(3))))
    out = command("-", "--org", "acme")
    assert "New: 3" in out
    assert "Imported: 3 added" in out
    assert Vehicle.objects.filter(organization=organization).count() == 3
    # Without an HM application the vehicles have no clearance yet, and the summary says so.
    assert "“Not requested”" in out
    assert not Clearance.objects.exists()


def test_empty_standard_input_is_explained(monkeypatch, organization):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(CommandError, match="The file is empty"):
        command("-", "--org", "acme")
