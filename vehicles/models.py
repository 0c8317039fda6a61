import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from organizations.models import Organization
from vehicles.brands import BRAND_CHOICES


class Vehicle(models.Model):
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="vehicles"
    )
    vin = models.CharField("VIN", max_length=17)
    brand = models.CharField(max_length=32, choices=BRAND_CHOICES)
    license_plate = models.CharField("licence plate", max_length=20, blank=True)
    nickname = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    odometer_km = models.PositiveIntegerField(
        "odometer (km)",
        null=True,
        blank=True,
        help_text="Sent to HM as a control measure where given.",
    )
    last_seen_at = models.DateTimeField(
        null=True, blank=True, help_text="Time of the newest telemetry."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vin"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "vin"], name="unique_vin_per_organization"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "brand"]),
            models.Index(fields=["organization", "license_plate"]),
            models.Index(fields=["organization", "created_at"]),
        ]

    def __str__(self):
        return self.nickname or self.vin


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
    # Options chosen at upload. The credential is kept by public id (no FK: vehicles must not
    # depend on the clearance app's tables).
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
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="unique_import_chunk")]

    def __str__(self):
        return f"{self.job_id}#{self.index}"


class TelemetrySnapshot(models.Model):
    """One Auto API answer (pull) or stream message, raw and normalised (issue 7).

    ``captured_at`` is HM's newest timestamp in the payload, so old data is never shown as fresh;
    only when HM gave none is it our receive time, marked by ``fields_meta["captured_at_source"]
    == "receive_time"``. ``fields_meta`` keeps every normalised field with its own HM
    timestamp and failure: ``{"fuel_level": {"value", "timestamp", "failure"}, "doors": [...]}``.
    """

    class Source(models.TextChoices):
        PULL = "pull", "Pulled (REST)"
        STREAM = "stream", "Streamed (MQTT)"

    vehicle = models.ForeignKey(Vehicle, on_delete=models.CASCADE, related_name="telemetry")
    captured_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=10, choices=Source.choices)
    # MQTT message id (at-least-once delivery: the same id twice is stored once).
    message_id = models.CharField(max_length=100, blank=True, default="")
    data = models.JSONField()
    fields_meta = models.JSONField(default=dict, blank=True)
    odometer_km = models.FloatField(null=True, blank=True)
    fuel_level = models.FloatField(null=True, blank=True)
    battery_level = models.FloatField(null=True, blank=True)
    estimated_range_km = models.FloatField(null=True, blank=True)
    charging_state = models.CharField(max_length=40, blank=True, default="")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    heading_deg = models.FloatField(null=True, blank=True)
    speed_kmh = models.FloatField(null=True, blank=True)
    ignition = models.CharField(max_length=20, blank=True, default="")
    doors_locked = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-captured_at"]
        indexes = [
            models.Index(fields=["vehicle", "-captured_at"]),
            models.Index(fields=["captured_at"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["vehicle", "message_id"],
                condition=~models.Q(message_id=""),
                name="unique_telemetry_message_per_vehicle",
            )
        ]

    def __str__(self):
        return f"{self.vehicle} at {self.captured_at:%Y-%m-%d %H:%M}"
