"""Imports under way when this version is installed: a file waiting to be checked gets its check
as durable work (and is checked again, now staging its rows); an import that was running had no
staged rows, so it stops with words saying how to import the rest. A preview made before has no
staged rows either: confirming it asks to check the file again."""

from django.db import migrations
from django.utils import timezone

INTERRUPTED = (
    "The import was interrupted by an upgrade of FleetPortal. Vehicles imported so far are kept; "
    "uploading the file again imports the rest."
)


def jobs_in_flight_become_work(apps, schema_editor):
    ImportJob = apps.get_model("imports", "ImportJob")
    ImportWork = apps.get_model("imports", "ImportWork")
    waiting = ImportJob.objects.filter(status__in=["uploaded", "validating"])
    ImportWork.objects.bulk_create(
        [ImportWork(job_id=pk, kind="check") for pk in waiting.values_list("pk", flat=True)]
    )
    waiting.update(status="uploaded")
    ImportJob.objects.filter(status="importing").update(
        status="failed", message=INTERRUPTED, finished_at=timezone.now()
    )


class Migration(migrations.Migration):
    dependencies = [("imports", "0003_import_work")]

    operations = [migrations.RunPython(jobs_in_flight_become_work, migrations.RunPython.noop)]
