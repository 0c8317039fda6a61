"""Who did what: one row per action (a bulk action writes its rows in one insert).

The audit app sits at the bottom of the layering (every app records into it), so it names the
organization and user models by their labels and never imports them; an API token is kept by id
and by its name at the time (``actor``), as users are, so entries outlive what they name.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Action(models.TextChoices):
    SIGN_IN = "sign_in", "Signed in"
    SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
    SIGN_OUT = "sign_out", "Signed out"
    MEMBER_ROLE_CHANGED = "member_role_changed", "Member's role changed"
    MEMBER_REMOVED = "member_removed", "Member removed"
    MEMBER_JOINED = "member_joined", "Member joined"
    INVITATION_SENT = "invitation_sent", "Invitation sent"
    INVITATION_REVOKED = "invitation_revoked", "Invitation revoked"
    CREDENTIAL_CREATED = "credential_created", "HM credential created"
    CREDENTIAL_CHANGED = "credential_changed", "HM credential changed"
    CREDENTIAL_DELETED = "credential_deleted", "HM credential deleted"
    CREDENTIAL_TESTED = "credential_tested", "HM credential tested"
    VEHICLE_ADDED = "vehicle_added", "Vehicle added"
    VEHICLE_EDITED = "vehicle_edited", "Vehicle edited"
    VEHICLE_DEFLEETED = "vehicle_defleeted", "Vehicle defleeted"
    VEHICLE_REONBOARDED = "vehicle_reonboarded", "Clearance requested again"
    IMPORT_CONFIRMED = "import_confirmed", "CSV import confirmed"
    EXPORT_DOWNLOADED = "export_downloaded", "Export downloaded"
    API_TOKEN_CREATED = "api_token_created", "API token created"
    API_TOKEN_REVOKED = "api_token_revoked", "API token revoked"
    ALERT_RULE_CHANGED = "alert_rule_changed", "Alert rule changed"


class AuditEntry(models.Model):
    at = models.DateTimeField(default=timezone.now)
    organization = models.ForeignKey(
        "organizations.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    token_id = models.BigIntegerField(null=True, blank=True, help_text="The API token's id.")
    actor = models.CharField(max_length=200, help_text="Who, in words, at the time.")
    action = models.CharField(max_length=40, choices=Action.choices)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_label = models.CharField(max_length=200, blank=True, help_text="e.g. the VIN.")
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        indexes = [
            models.Index(fields=["organization", "-at"]),
            models.Index(fields=["organization", "action", "-at"]),
            models.Index(fields=["organization", "object_label"]),
            models.Index(fields=["at"]),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_label}"
