"""Telemetry history: one TelemetrySnapshot per pull answer or stream message."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from durable.models import DurableWork
from vehicles.models import Vehicle


class TelemetrySnapshot(models.Model):
    """One Auto API answer (pull) or stream message, raw and normalised.

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
        # The table kept its name when the model moved here from the vehicles app.
        db_table = "vehicles_telemetrysnapshot"
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


class Place(models.Model):
    """A named circle of an organization (a depot, a customer's site): centre and radius.

    A position inside it is said "at <name>" on the fleet list, the map and the vehicle page.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="places"
    )
    name = models.CharField(max_length=80)
    latitude = models.FloatField()
    longitude = models.FloatField()
    radius_m = models.PositiveIntegerField("radius (m)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_place_name")
        ]

    def __str__(self):
        return self.name


class LatestTelemetry(models.Model):
    """The newest known value of each field a fleet overview shows, one row per vehicle.

    Kept by ``telemetry.services`` with every stored snapshot (a stream message may carry only a
    few fields, so each group keeps its own time), so the fleet list and the map read one row per
    vehicle in the same query as the vehicle instead of searching the history.
    """

    vehicle = models.OneToOneField(
        Vehicle, on_delete=models.CASCADE, primary_key=True, related_name="latest_telemetry"
    )
    captured_at = models.DateTimeField(db_index=True)
    battery_level = models.FloatField(null=True, blank=True)
    fuel_level = models.FloatField(null=True, blank=True)
    # The lower of battery and fuel (0-1): what "below X %" compares.
    energy_level = models.FloatField(null=True, blank=True, db_index=True)
    energy_at = models.DateTimeField(null=True, blank=True)
    # The fleet list sorts by these (and energy_level) from their index: clearance/telemetry_pages.
    estimated_range_km = models.FloatField(null=True, blank=True, db_index=True)
    odometer_km = models.FloatField(null=True, blank=True, db_index=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    position_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["latitude", "longitude"])]

    def __str__(self):
        return f"{self.vehicle_id} at {self.captured_at:%Y-%m-%d %H:%M}"


class FleetColumns(models.Model):
    """The fleet list's telemetry columns one member hides, remembered per organization."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="fleet_columns"
    )
    organization = models.ForeignKey(
        "organizations.Organization", on_delete=models.CASCADE, related_name="+"
    )
    hidden = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="unique_fleet_columns_per_member"
            )
        ]

    def __str__(self):
        return f"{self.user_id}: hides {', '.join(self.hidden) or 'nothing'}"


class TelemetryPull(DurableWork):
    """The pull schedule: one row per approved vehicle, the durable work of ``telemetry.schedule``.

    ``next_attempt_at`` is when the vehicle is pulled next (spread over the pull interval, or a
    retry's backoff); the row stays pending between pulls and is deleted when the clearance is
    no longer approved. ``requested_at``: a Refresh somebody pressed that no pull has answered
    yet. ``outcome*``: the last pull's result in words, which the panel shows
    (``outcome_requested``: it answered a Refresh).
    """

    class Outcome(models.TextChoices):
        OK = "ok", "Received data"
        FAILED = "failed", "Got no data"
        RETRYING = "retrying", "Trying again"

    vehicle = models.OneToOneField(Vehicle, on_delete=models.CASCADE, related_name="telemetry_pull")
    requested_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    outcome_message = models.TextField(blank=True)
    outcome_at = models.DateTimeField(null=True, blank=True)
    outcome_requested = models.BooleanField(default=False)

    class Meta(DurableWork.Meta):
        verbose_name = "telemetry pull"

    def __str__(self) -> str:
        return f"pull of {self.vehicle_id} at {self.next_attempt_at:%H:%M:%S} ({self.state})"


class PullWaker(models.Model):
    """One of the ``TELEMETRY_PULL_WAKERS`` chains of waker messages that do the due pulls.

    Whoever sends a lane's message writes a new ``token`` and passes it along; a message whose
    token is no longer the lane's (a duplicate, or one the reconciler replaced) does nothing. So
    each lane has one live message at a time, however many vehicles there are. ``awake_until``:
    until then the lane's message is expected to run; after it the reconciler wakes the lane.
    """

    lane = models.PositiveSmallIntegerField(primary_key=True)
    token = models.CharField(max_length=32, blank=True)
    awake_until = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"telemetry pull lane {self.lane}"
