import uuid

from django.conf import settings
from django.db import models

from clearance import statuses
from clearance.fields import EncryptedTextField
from clearance.statuses import ClearanceStatus
from durable.models import DurableWork

__all__ = [
    "Clearance",
    "ClearanceEvent",
    "ClearanceStatus",
    "Credential",
    "HMWork",
    "VehicleToken",
    "WebhookDelivery",
]
from organizations.models import Organization
from vehicles.models import Vehicle


class Credential(models.Model):
    """One HM application (OAuth client) of an organization."""

    class Environment(models.TextChoices):
        PRODUCTION = "production", "Production"
        SANDBOX = "sandbox", "Sandbox"
        SIMULATOR = "simulator", "Simulator (offline stand-in)"

    class AuthMode(models.TextChoices):
        CLIENT_SECRET = "client_secret", "OAuth client id + client secret"
        PRIVATE_KEY = "private_key", "OAuth client id + private key (JWT assertion)"
        SERVICE_ACCOUNT = "service_account", "Service account key (legacy)"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="credentials"
    )
    name = models.CharField(max_length=100)
    environment = models.CharField(max_length=20, choices=Environment.choices)
    auth_mode = models.CharField(
        max_length=20, choices=AuthMode.choices, default=AuthMode.CLIENT_SECRET
    )
    client_id = models.CharField("OAuth client id", max_length=200, blank=True)
    private_key_id = models.CharField("private key id", max_length=200, blank=True)
    service_account_key_id = models.CharField(
        "service account API key id", max_length=200, blank=True
    )
    app_id = models.CharField(
        "HM application id", max_length=200, blank=True, help_text="For MQTT topics."
    )
    # Write-only secrets: never rendered back; *_set_at tells when they were last replaced.
    client_secret = EncryptedTextField(blank=True)
    private_key = EncryptedTextField(blank=True)
    webhook_secret = EncryptedTextField(blank=True)
    mqtt_client_certificate = models.TextField(blank=True)
    mqtt_client_key = EncryptedTextField(blank=True)
    client_secret_set_at = models.DateTimeField(null=True, blank=True)
    private_key_set_at = models.DateTimeField(null=True, blank=True)
    webhook_secret_set_at = models.DateTimeField(null=True, blank=True)
    mqtt_client_key_set_at = models.DateTimeField(null=True, blank=True)
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="unique_credential_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_environment_display()})"


class Clearance(models.Model):
    """The HM side of a vehicle: its clearance status and what we know of its history."""

    vehicle = models.OneToOneField(Vehicle, on_delete=models.CASCADE, related_name="clearance")
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.PROTECT, related_name="clearances"
    )
    # Not limited to the choices: an unknown status from HM is stored raw.
    status = models.CharField(max_length=32, default=ClearanceStatus.QUEUED, db_index=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # HM's own time of the last applied change; older updates than this are ignored.
    hm_changed_at = models.DateTimeField(null=True, blank=True)
    # Our clock: when we learnt the current status (webhook received, sync started, our own
    # call). News learnt before this is stale (compared on our clock, never against HM's).
    status_known_at = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    description = models.TextField(
        blank=True, help_text="HM's explanation, e.g. a rejection reason."
    )
    last_error = models.TextField(blank=True, help_text="The last failure, in words.")
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["credential", "status"])]

    def __str__(self) -> str:
        return f"{self.vehicle} {self.status}"

    # The status rules of clearance.statuses, asked of one clearance.
    @property
    def is_final(self) -> bool:
        return statuses.is_final(self.status)

    @property
    def can_defleet(self) -> bool:
        return statuses.can_defleet(self.status)

    @property
    def can_reonboard(self) -> bool:
        return statuses.can_reonboard(self.status)

    @property
    def status_label(self) -> str:
        return statuses.label(self.status)


class FleetStatusCount(models.Model):
    """How many of an organization's vehicles are in a clearance status ("" for vehicles with no
    clearance), kept by database triggers on vehicles and clearances (migration 0004), so the
    fleet counters never count the fleet and no writer (bulk import, queryset update, cascade)
    can forget them.

    On PostgreSQL every statement appends its changes as rows of +/- vehicles (no two
    transactions ever wait on the same counter row) and an organization's count of a status is
    the sum of its rows; reading folds them together again (``selectors.fleet_status_counts``).
    On SQLite (one writer at a time) each (organization, status) has one row, updated in place.
    """

    # No foreign key constraint: the triggers write while an organization's vehicles are
    # deleted, before or after the organization itself.
    organization = models.ForeignKey(
        Organization,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    status = models.CharField(max_length=32, blank=True)
    vehicles = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["organization", "status"])]

    def __str__(self) -> str:
        return f"{self.status or 'no clearance'}: {self.vehicles:+d}"


class ClearanceEvent(models.Model):
    """Append-only history of a clearance."""

    class Source(models.TextChoices):
        USER = "user", "User"
        API = "api", "HM API answer"
        POLL = "poll", "Sync with HM"
        WEBHOOK = "webhook", "HM webhook"
        SYSTEM = "system", "FleetPortal"

    clearance = models.ForeignKey(Clearance, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32)
    at = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["clearance", "at"])]

    def __str__(self) -> str:
        return f"{self.from_status or '—'} → {self.to_status} ({self.source})"


class VehicleToken(models.Model):
    """Legacy per-vehicle token (service-account mode): refreshed under a row lock."""

    clearance = models.OneToOneField(
        Clearance, on_delete=models.CASCADE, related_name="vehicle_token"
    )
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField(blank=True)
    authorization_id = models.CharField(max_length=200, blank=True)
    scope = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Token for {self.clearance.vehicle}"


class WebhookDelivery(DurableWork):
    """One webhook received from HM: a hint to confirm with HM (durable work; the delivery id
    makes repeats harmless). ``result`` says what the confirmation found."""

    credential = models.ForeignKey(
        Credential, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    delivery_id = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    result = models.TextField(blank=True)

    class Meta(DurableWork.Meta):
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [*DurableWork.Meta.indexes, models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.delivery_id}"


class HMWork(DurableWork):
    """One HM call we owe: send a queued clearance, defleet a vehicle, or issue, renew or revoke
    a legacy vehicle access token (durable/__init__.py).

    Written in the same transaction as the user's action; done by ``clearance.tasks`` wakers in
    batches per credential, retried per row with backoff, reconciled every interval.
    ``sending_at``: the request went out and its answer was never read (a timeout, a lost
    connection); before sending again, HM is asked which of these VINs it already knows.
    """

    class Kind(models.TextChoices):
        SEND = "send", "Send the clearance request"
        DEFLEET = "defleet", "Defleet"
        TOKEN_ISSUE = "token_issue", "Issue the vehicle's access token"
        # Recurring: one open row per token, due when the token needs renewing.
        TOKEN_REFRESH = "token_refresh", "Renew the vehicle's access token"
        TOKEN_REVOKE = "token_revoke", "Revoke the vehicle's access token"

    clearance = models.ForeignKey(Clearance, on_delete=models.CASCADE, related_name="work")
    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="work")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    sending_at = models.DateTimeField(null=True, blank=True)

    class Meta(DurableWork.Meta):
        verbose_name = "HM work"
        verbose_name_plural = "HM work"
        indexes = [
            *DurableWork.Meta.indexes,
            models.Index(fields=["credential", "kind", "state"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["clearance", "kind"],
                condition=models.Q(state__in=["pending", "running"]),
                name="one_open_hm_work_per_clearance",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.clearance_id} ({self.state})"
