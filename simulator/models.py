"""The simulator's own tables. It never touches clearance or vehicles: it is a foreign server."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import models

from .behaviour import Facts

DEFAULT_SCOPES = "fleet:clearance vehicle:eligibility-check vehicle:data"


class SimulatedApp(models.Model):
    """One HM application as the console would show it (OAuth client, keys, webhook, faults)."""

    app_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=120)
    client_id = models.CharField(max_length=64, unique=True, default="", editable=False)
    # Only a SHA-256 of the secret is kept; the secret is printed once at creation.
    client_secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.CharField(max_length=300, default=DEFAULT_SCOPES)
    fleet_access = models.BooleanField(
        default=True, help_text="Off: fleet endpoints answer 403 (no fleet associated)."
    )
    token_lifetime_seconds = models.PositiveIntegerField(default=300)

    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)

    approval_delay_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: SIMULATOR_APPROVAL_DELAY_SECONDS."
    )
    error_rate = models.FloatField(
        null=True, blank=True, help_text="0-1. Empty: SIMULATOR_ERROR_RATE."
    )
    rate_limit_rate = models.FloatField(
        null=True, blank=True, help_text="0-1. Empty: SIMULATOR_RATE_LIMIT_RATE."
    )
    latency_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: SIMULATOR_LATENCY_MS."
    )
    retry_after_seconds = models.PositiveIntegerField(default=10)
    next_fault_status = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Answer the next requests with this status (500, 429, 503...).",
    )
    next_fault_count = models.PositiveIntegerField(default=0)
    failing_fields = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="Vehicle data fields reported as a failure instead of a value, separated by "
        "spaces: battery_level fuel_level odometer_km speed_kmh coordinates.",
    )

    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "simulated HM application"

    def __str__(self) -> str:
        return self.name

    @property
    def scope_set(self) -> frozenset[str]:
        return frozenset(self.scopes.split())


class AppKey(models.Model):
    """A registered public key: an OAuth client private key or a legacy service-account key."""

    class Kind(models.TextChoices):
        PRIVATE_KEY = "private_key", "OAuth client private key"
        SERVICE_ACCOUNT = "service_account", "Service account key (legacy)"

    app = models.ForeignKey(SimulatedApp, on_delete=models.CASCADE, related_name="keys")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    key_id = models.CharField(max_length=64, unique=True, default="", editable=False)
    public_key_pem = models.TextField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["app", "created_at"]
        verbose_name = "registered key"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.key_id}"


class SimClearance(models.Model):
    """A clearance round. Its status is computed from these facts and the simulator clock."""

    app = models.ForeignKey(SimulatedApp, on_delete=models.CASCADE, related_name="clearances")
    vin = models.CharField(max_length=17)
    brand = models.CharField(max_length=40)
    tags = models.JSONField(default=dict, blank=True)
    control_odometer_km = models.FloatField(null=True, blank=True)
    requested_at = models.DateTimeField()
    # Every POST naming this VIN, answered or not: tests check that nothing is sent twice.
    times_requested = models.PositiveIntegerField(default=0)
    approval_delay_seconds = models.PositiveIntegerField(default=5)
    removal_delay_seconds = models.PositiveIntegerField(default=5)
    deleted_at = models.DateTimeField(null=True, blank=True)
    delete_action = models.CharField(max_length=20, blank=True)
    # Changelog of earlier rounds (re-onboarding after rejected/revoked/canceled).
    history = models.JSONField(default=list, blank=True)
    # The last status a webhook was queued for, and whether it can still change on its own.
    notified_status = models.CharField(max_length=20, blank=True)
    settled = models.BooleanField(default=False, db_index=True)

    class Meta:
        ordering = ["app", "vin"]
        constraints = [models.UniqueConstraint(fields=["app", "vin"], name="sim_clearance_app_vin")]
        verbose_name = "simulated clearance"

    def __str__(self) -> str:
        return f"{self.vin} ({self.app})"

    def facts(self):
        return Facts(
            vin=self.vin,
            brand=self.brand,
            requested_at=self.requested_at,
            approval_delay=timedelta(seconds=self.approval_delay_seconds),
            removal_delay=timedelta(seconds=self.removal_delay_seconds),
            control_odometer_km=self.control_odometer_km,
            deleted_at=self.deleted_at,
            delete_action=self.delete_action,
        )


class UsedJti(models.Model):
    """jti values already presented in assertions: a JWT is good for one use only."""

    key_id = models.CharField(max_length=64)
    jti = models.CharField(max_length=200)
    used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key_id", "jti"], name="sim_used_jti")]
        verbose_name = "used jti"

    def __str__(self) -> str:
        return f"{self.key_id}: {self.jti}"


class IssuedToken(models.Model):
    """Tokens the simulator handed out. Only a SHA-256 of each token is stored."""

    class Kind(models.TextChoices):
        APP = "app", "Application access token"
        AUTH_TOKEN = "auth_token", "Service-account auth token"
        VEHICLE_ACCESS = "vehicle_access", "Vehicle access token"
        VEHICLE_REFRESH = "vehicle_refresh", "Vehicle refresh token"

    app = models.ForeignKey(SimulatedApp, on_delete=models.CASCADE, related_name="tokens")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    vin = models.CharField(max_length=17, blank=True)
    authorization_id = models.CharField(max_length=64, blank=True)
    scope = models.CharField(max_length=300, blank=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-issued_at"]
        verbose_name = "issued token"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.app} ({self.vin or 'app'})"


class SimWebhookDelivery(models.Model):
    """An outgoing webhook (the simulator plays HM's sender)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    app = models.ForeignKey(SimulatedApp, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    event = models.CharField(max_length=60)
    vin = models.CharField(max_length=17, blank=True)
    body = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook delivery (simulator)"
        verbose_name_plural = "webhook deliveries (simulator)"

    def __str__(self) -> str:
        return f"{self.event} {self.vin} -> {self.status}"


class SimulatorClock(models.Model):
    """A single row: how far the simulator's clock is ahead of real time (tests travel in time)."""

    offset_seconds = models.FloatField(default=0)

    class Meta:
        verbose_name = "simulator clock"

    def __str__(self) -> str:
        return f"simulator clock {self.offset_seconds:+.0f} s"
