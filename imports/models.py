"""CSV imports: one ImportJob per upload, the file kept in ImportChunk rows."""

import uuid

from django.conf import settings
from django.db import models

from durable.models import DurableWork
from organizations.models import Organization


class ImportJob(models.Model):
    """One CSV upload: validated into a preview, then imported by a worker after confirmation.

    The file itself is kept in the database (ImportChunk rows), so a worker on another machine
    reads it without shared disk. Counters are updated after every batch (progress bar).
    """

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded"
        VALIDATING = "validating", "Checking the file"
        PREVIEW = "preview", "Ready to confirm"
        IMPORTING = "importing", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="import_jobs"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    original_name = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0, help_text="Bytes.")
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # Options chosen at upload. The credential is kept by public id (no FK, as when the table
    # belonged to the vehicles app).
    update_existing = models.BooleanField(default=False)
    check_eligibility = models.BooleanField(default=False)
    credential_public_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADED)
    total = models.PositiveIntegerField(default=0, help_text="Data rows in the file.")
    processed = models.PositiveIntegerField(default=0, help_text="Data rows imported so far.")
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0, help_text="Already in the fleet, unchanged.")
    errors = models.PositiveIntegerField(default=0, help_text="Rows with errors (never imported).")
    warnings = models.PositiveIntegerField(default=0)
    queued_requests = models.PositiveIntegerField(default=0, help_text="Clearances queued for HM.")
    error_sample = models.JSONField(default=list, blank=True, help_text="The first row errors.")
    layout = models.JSONField(
        default=dict, blank=True, help_text="Detected encoding, delimiter, columns."
    )
    eligibility = models.JSONField(default=dict, blank=True)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    validated_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The tables kept their names when the models moved here from the vehicles app.
        db_table = "vehicles_importjob"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"])]

    def __str__(self):
        return f"Import {self.original_name or self.public_id} ({self.status})"

    @property
    def is_running(self) -> bool:
        return self.status in {self.Status.UPLOADED, self.Status.VALIDATING, self.Status.IMPORTING}

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.processed / self.total) if self.total else 0


class ImportChunk(models.Model):
    """A piece (1 MB) of an uploaded CSV file, read back in order by the import worker."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        db_table = "vehicles_importchunk"
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="unique_import_chunk")]

    def __str__(self):
        return f"{self.job_id}#{self.index}"


class ImportRow(models.Model):
    """A valid row of a checked file, staged for its import: the file is validated once (at the
    preview) and the import inserts vehicles, clearances and events from these rows with
    set-based statements. Deleted when the import ends or is canceled.

    ``seq`` is the row's place among the file's data rows (1, 2, ...; rows with errors are not
    staged but keep their number), so a batch is a range of ``seq`` and the job's ``processed``
    is where the next batch starts. ``public_id`` becomes the new vehicle's; PostgreSQL leaves it
    empty and draws the vehicle's when the batch is written (``gen_random_uuid()``), which spares
    the check a UUID per row.
    """

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="+", db_index=False)
    seq = models.PositiveIntegerField()
    row = models.PositiveIntegerField(help_text="Row number in the file.")
    public_id = models.UUIDField(null=True, blank=True)
    vin = models.CharField(max_length=17)
    brand = models.CharField(max_length=32)
    license_plate = models.CharField(max_length=20, blank=True)
    nickname = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    odometer_km = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="unique_import_row")]

    def __str__(self):
        return f"{self.job_id}:{self.seq} {self.vin}"


class ImportWork(DurableWork):
    """What an import job is owed in the background, as durable work (``durable/__init__.py``):
    checking its file (``check``, the preview) or importing its next batch (``batch``).

    Written with the upload or the confirmation. A check is claimed with a lease that each staged
    batch extends; an import batch is locked only for the transaction that writes it, so a worker
    killed mid-batch leaves the row due at once and the next wake (the reconciler's at the latest)
    resumes from the job's committed ``processed``.
    """

    class Kind(models.TextChoices):
        CHECK = "check", "Check the file"
        BATCH = "batch", "Import the next batch"

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="work")
    kind = models.CharField(max_length=10, choices=Kind.choices)

    class Meta(DurableWork.Meta):
        verbose_name = "import work"
        verbose_name_plural = "import work"
        constraints = [
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=models.Q(state__in=["pending", "running"]),
                name="one_open_import_work_per_job",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.job_id} ({self.state})"
