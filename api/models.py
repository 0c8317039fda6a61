"""The integrator API's own tables: tokens, remembered answers to retried writes, the change feed."""

from __future__ import annotations

import hashlib
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from organizations.models import Organization


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Read and write"


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        """Neither revoked nor expired."""
        return self.filter(revoked_at__isnull=True).filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now())
        )


class ApiToken(models.Model):
    """An organization's key to the API. The token itself is shown once at creation; only its
    SHA-256 is stored (a 256-bit random token needs no slow hash), so the database never holds a
    usable token. ``prefix`` (the first characters) lets people tell their tokens apart."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @property
    def can_write(self) -> bool:
        return self.scope == Scope.WRITE

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"


class IdempotentRequest(models.Model):
    """The answer to a write sent with an ``Idempotency-Key``: a retry gets the same answer and
    changes nothing. The unique key makes two concurrent tries with one key wait for each other."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    path = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the request body
    status_code = models.PositiveSmallIntegerField(default=0)
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "key"], name="unique_idempotency_key")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.key} ({self.path})"


class ChangeKind(models.TextChoices):
    CLEARANCE = "clearance.changed", "Clearance changed"
    ADDED = "vehicle.added", "Vehicle added"
    REMOVED = "vehicle.removed", "Vehicle removed"


class ChangeEntry(models.Model):
    """One change of the organization's fleet, for ``GET /api/v1/changes``.

    Read in commit order: ``txid`` is the writing transaction's id on PostgreSQL (0 elsewhere,
    where writers are serialised and ``id`` order is commit order); a reader only sees entries
    of transactions older than every transaction still running (see api/feed.py).
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    txid = models.BigIntegerField(default=0)
    kind = models.CharField(max_length=32, choices=ChangeKind.choices)
    # No foreign key: the entry outlives a removed vehicle.
    vehicle_id = models.BigIntegerField()
    vin = models.CharField(max_length=17)
    from_status = models.CharField(max_length=32, blank=True)
    to_status = models.CharField(max_length=32, blank=True)
    at = models.DateTimeField()
    source = models.CharField(max_length=10, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "txid", "id"])]
        verbose_name_plural = "change entries"

    def __str__(self) -> str:
        return f"{self.kind} {self.vin}"
