"""Alert rules, the alerts they fire, in-app notifications, email and outgoing webhook deliveries.

Delivery rows (``OutgoingEmail``, ``EventDelivery``) are durable work (durable/__init__.py):
written in the same transaction as what caused them, claimed by a worker when due, retried with
backoff. A Celery message only wakes the worker; a lost one delays a delivery by one reconciler
interval.
"""

from __future__ import annotations

import uuid
import zoneinfo

from django.conf import settings
from django.db import models
from django.db.models import Q

from clearance.fields import EncryptedTextField
from durable.models import ACTIVE_STATES, DurableWork, WorkState, due_index
from organizations.models import Organization
from vehicles.models import Vehicle


class RuleKind(models.TextChoices):
    CLEARANCE_REJECTED = "clearance_rejected", "Clearance rejected"
    CLEARANCE_REVOKED = "clearance_revoked", "Clearance revoked by the carmaker"
    CLEARANCE_ERROR = "clearance_error", "Clearance request refused (error)"
    DEFLEET_REFUSED = "defleet_refused", "Defleet refused by High Mobility"
    PENDING_TOO_LONG = "pending_too_long", "Pending too long"
    SILENT = "silent", "Approved vehicle silent"
    BATTERY_LOW = "battery_low", "Battery low"
    FUEL_LOW = "fuel_low", "Fuel low"
    FIELD_FAILURE = "field_failure", "Vehicle reports a failure"


class EmailMode(models.TextChoices):
    IMMEDIATE = "immediate", "Immediately"
    DIGEST = "digest", "Daily digest"
    OFF = "off", "Off"


class AlertRule(models.Model):
    """One condition watched for an organization's vehicles (all of them, or those with a tag)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="alert_rules"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    enabled = models.BooleanField(default=True)
    # Days (pending), hours (silent) or percent (battery, fuel); unused by the other kinds.
    threshold = models.FloatField(null=True, blank=True)
    # The telemetry field a failure rule watches (e.g. "battery_level").
    field = models.CharField(max_length=40, blank=True)
    # Scope: every vehicle when tag_key is empty; else vehicles with this tag (any value when
    # tag_value is empty).
    tag_key = models.CharField(max_length=64, blank=True)
    tag_value = models.CharField(max_length=100, blank=True)
    email_default = models.CharField(
        "email members",
        max_length=10,
        choices=EmailMode.choices,
        default=EmailMode.IMMEDIATE,
        help_text="What members get by email unless they chose otherwise for themselves.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["organization", "enabled", "kind"])]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_alert_rule_name")
        ]

    def __str__(self):
        return self.name

    @property
    def scope_label(self) -> str:
        if not self.tag_key:
            return "All vehicles"
        return f"Tag {self.tag_key}={self.tag_value}" if self.tag_value else f"Tag {self.tag_key}"

    def applies_to(self, tags: dict | None) -> bool:
        if not self.tag_key:
            return True
        tags = tags if isinstance(tags, dict) else {}
        if self.tag_key not in tags:
            return False
        return not self.tag_value or str(tags[self.tag_key]) == self.tag_value


class Alert(models.Model):
    """A rule's condition met by one vehicle: open until the condition clears (``cleared_at``).

    At most one open alert per rule and vehicle (a partial unique index): that is what makes an
    alert fire once, and again only after it cleared, even when two workers evaluate at once.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    vehicle = models.ForeignKey(Vehicle, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    rule_name = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    fired_at = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        indexes = [models.Index(fields=["organization", "-fired_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "vehicle"],
                condition=Q(cleared_at__isnull=True),
                name="one_open_alert_per_rule_and_vehicle",
            )
        ]

    def __str__(self):
        return f"{self.title} ({self.vehicle_id})"


class Notification(models.Model):
    """An alert in one member's notification centre; unread until ``read_at``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "organization", "-created_at"]),
            # The bell: one count over this index, whatever the history's size.
            models.Index(
                fields=["user", "organization"],
                condition=Q(read_at__isnull=True),
                name="notification_unread",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["user", "alert"], name="one_notification_per_alert")
        ]

    def __str__(self):
        return f"{self.alert} for {self.user_id}"


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


def default_time_zone() -> str:
    return settings.TIME_ZONE


class NotificationSettings(models.Model):
    """A user's own preferences: the time zone digests (and their dates) follow, the digest hour."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    time_zone = models.CharField(max_length=64, default=default_time_zone)
    digest_hour = models.PositiveSmallIntegerField(
        default=8, help_text="Hour of the day (0-23, in your time zone) the daily digest is sent."
    )
    # Alerts fired up to this instant were covered by a digest (or are older than the first).
    digest_covered_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self):
        return f"Notification settings of {self.user}"


class EmailSubscription(models.Model):
    """A member's own choice for one rule, overriding the rule's ``email_default``."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_subscriptions"
    )
    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="subscriptions")
    mode = models.CharField(max_length=10, choices=EmailMode.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "rule"], name="one_email_choice_per_rule")
        ]

    def __str__(self):
        return f"{self.user} / {self.rule}: {self.mode}"


class DeliveryStatus(models.TextChoices):
    """A delivery as people see it, read from its durable work state (``Delivery.status``)."""

    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


class Delivery(DurableWork):
    """What email and webhook deliveries share: a unit of durable work (durable/__init__.py).

    Done with ``delivered_at`` set: delivered; done without it: canceled (nobody needs it any
    more, ``last_error`` says why); failed: given up, in words. ``attempts`` counts the claims.
    """

    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta(DurableWork.Meta):
        abstract = True

    @property
    def status(self) -> str:
        if self.state in ACTIVE_STATES:
            return DeliveryStatus.PENDING
        if self.state == WorkState.FAILED:
            return DeliveryStatus.FAILED
        return DeliveryStatus.DELIVERED if self.delivered_at else DeliveryStatus.CANCELED

    def get_status_display(self) -> str:
        return DeliveryStatus(self.status).label


class OutgoingEmail(Delivery):
    """One email to one member: alerts (immediate), a digest, or a disabled-endpoint warning."""

    class Kind(models.TextChoices):
        ALERTS = "alerts", "Alerts"
        DIGEST = "digest", "Daily digest"
        ENDPOINT_DISABLED = "endpoint_disabled", "Webhook endpoint disabled"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="outgoing_emails"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    rule = models.ForeignKey(
        AlertRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.ForeignKey(
        "WebhookEndpoint", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    alerts = models.ManyToManyField(Alert, blank=True, related_name="emails")
    subject = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [due_index("notifications_email_due")]

    def __str__(self):
        return f"{self.get_kind_display()} to {self.user} ({self.state})"


class WebhookEndpoint(models.Model):
    """A receiver of signed events in the organization's own systems."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField("URL", max_length=500)
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list)
    # Write-only: shown once when created or rotated, never again.
    secret = EncryptedTextField()
    secret_set_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    # The first failed attempt since the last success (None while it works).
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url", "id"]
        indexes = [models.Index(fields=["organization", "enabled"])]

    def __str__(self):
        return self.url


class OutgoingEvent(models.Model):
    """One event as sent: its id and the exact JSON body (signed anew at every attempt)."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=40)
    body = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.type} {self.public_id}"


class EventDelivery(Delivery):
    """One event to one endpoint; a redelivery is a new row for the same event."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(OutgoingEvent, on_delete=models.CASCADE, related_name="deliveries")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The start of the receiver's answer.")

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outgoing webhook delivery"
        verbose_name_plural = "outgoing webhook deliveries"
        indexes = [
            due_index("notifications_webhook_due"),
            models.Index(fields=["endpoint", "-created_at"]),
        ]

    def __str__(self):
        return f"{self.event} to {self.endpoint} ({self.state})"
