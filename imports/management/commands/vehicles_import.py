"""Import vehicles from a CSV file on the terminal, with the same validation as the web import.

Exit status: 1 when the file cannot be read, or when it has row errors under --dry-run; 0 otherwise.
Without --dry-run the valid rows are imported and the rows with errors are listed and skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from clearance.management.lookup import credential_for, organization_for
from imports import planning, services
from imports.models import ImportJob
from imports.parse import CsvFileError

SHOW_ERRORS = 20


class Command(BaseCommand):
    help = (
        "Import vehicles from a CSV file (vin, brand, license_plate, nickname, tags, odometer_km)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="Path of the CSV file ('-' reads standard input).")
        parser.add_argument("--org", required=True, help="Slug of the organization.")
        parser.add_argument(
            "--credential", help="Name of the HM application that requests the clearances."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only validate and show what would change."
        )
        parser.add_argument(
            "--update-existing",
            action="store_true",
            help="Update vehicles already in the fleet instead of skipping them.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_for(options["org"])
        credential = credential_for(organization, options.get("credential"), required=False)
        started = time.monotonic()
        try:
            with self._source(options["file"]) as open_file:
                self._plan_and_import(open_file, organization, credential, options, started)
        except OSError as exc:
            raise CommandError(f"Cannot read {options['file']}: {exc.strerror or exc}") from None
        except CsvFileError as exc:
            raise CommandError(exc.message) from None

    def _plan_and_import(
        self, open_file: Callable, organization: Any, credential: Any, options: Any, started: float
    ) -> None:
        update = options["update_existing"]
        with open_file() as stream:
            layout, counts, sample = planning.plan_file(
                stream, organization, update_existing=update
            )
        self._report_plan(layout, counts, sample)
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was changed.")
            if counts.errors:
                raise CommandError(f"{counts.errors} row(s) have errors.", returncode=1)
            return
        if not (counts.created or counts.updated):
            self.stdout.write(self.style.SUCCESS("Nothing to import: no new or changed vehicles."))
            return
        try:
            with open_file() as stream:
                done = services.import_rows(
                    stream,
                    organization,
                    credential=credential,
                    update_existing=update,
                    name=os.path.basename(options["file"]) if options["file"] != "-" else "",
                )
        except Exception as exc:
            raise CommandError(_stopped_message(exc, organization, counts.total)) from exc
        elapsed = time.monotonic() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported: {done.created} added, {done.updated} updated, {done.skipped} skipped, "
                f"{done.errors} row(s) with errors not imported, {done.queued_requests} clearance "
                f"request(s) queued ({elapsed:.1f} s)."
            )
        )
        if credential is None and done.created:
            self.stdout.write(
                "No HM application chosen: the new vehicles show as “Not requested”. Request "
                "their clearance from the fleet page, or import again with --credential."
            )

    @contextlib.contextmanager
    def _source(self, path: str) -> Iterator[Callable]:
        """Yields a function opening the file for one pass. The file is read twice (plan, then
        import), so standard input is first copied to a temporary file."""
        if path != "-":
            yield lambda: open(path, "rb")  # noqa: SIM115 (the caller closes it)
            return
        with tempfile.TemporaryFile() as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
            copy.flush()

            def reopen() -> Any:
                again = open(os.dup(copy.fileno()), "rb")  # noqa: SIM115 (the caller closes it)
                again.seek(0)
                return again

            yield reopen

    def _report_plan(self, layout: Any, counts: planning.Counts, sample: list[dict]) -> None:
        out = self.stdout
        out.write(
            f"{counts.total} row(s) read ({layout.encoding_label}, {layout.delimiter_name} separated)."
        )
        if layout.unknown_columns:
            out.write(f"Ignored column(s): {', '.join(layout.unknown_columns)}.")
        out.write(
            f"New: {counts.created} · to update: {counts.updated} · already in the fleet, skipped: "
            f"{counts.skipped} · rows with errors: {counts.errors} · warnings: {counts.warnings}"
        )
        for issue in sample[:SHOW_ERRORS]:
            column = f", {issue['column']}" if issue["column"] else ""
            out.write(self.style.ERROR(f"  Row {issue['row']}{column}: {issue['message']}"))
        if counts.errors > SHOW_ERRORS:
            out.write(f"  … and more; {counts.errors} row(s) with errors in total.")


def _stopped_message(exc: Exception, organization: Any, total: int) -> str:
    """What a failed import left in the fleet: whole batches before the failure, nothing after."""
    reason = exc.message if isinstance(exc, CsvFileError) else f"{type(exc).__name__}: {exc}"
    reason = reason.strip().splitlines()[0][:300] if reason.strip() else type(exc).__name__
    job = ImportJob.objects.filter(organization=organization).order_by("-pk").first()
    if job is None or not job.processed:
        kept = "Nothing was imported."
    else:
        kept = (
            f"Imported before it stopped: {job.created} added, {job.updated} updated "
            f"(the first {job.processed} of {total} rows); they stay in the fleet."
        )
    return (
        f"The import stopped: {reason}. {kept} Nothing of the rows after them was saved; "
        "running the same command again imports the rest."
    )
