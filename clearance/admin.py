"""Admin for the clearance app. Secrets are write-only here too; actions call the same services."""

from __future__ import annotations

import json
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django_stubs_ext import StrPromise

from clearance import tasks
from clearance.fields import encrypted_field_names
from clearance.forms import CredentialForm
from clearance.models import Clearance, ClearanceEvent, Credential, VehicleToken, WebhookDelivery
from clearance.services import defleet, onboarding
from clearance.services.credentials import record_check
from clearance.services.webhooks import webhook_url_for
from clearance.views import CHECK_NOT_STARTED, hide_secrets_from_error_reports
from clearance.work import BackgroundTask
from durable.models import WorkState
from organizations.models import Organization

# For lists that show a credential by name: its secrets are not loaded (nor decrypted), so one
# that no configured key can decrypt does not break the list.
_CREDENTIAL_SECRETS = encrypted_field_names(Credential, through="credential")


class CredentialListFilter(admin.RelatedFieldListFilter):
    """The credential filter's choices, by name, without loading the credentials' secrets."""

    def field_choices(
        self, field: Any, request: HttpRequest, model_admin: Any
    ) -> list[tuple[str, str | StrPromise]]:
        credentials = Credential.objects.defer(*encrypted_field_names(Credential))
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            credentials = credentials.order_by(*ordering)
        return [(str(c.pk), str(c)) for c in credentials]


def queue_each(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, task: BackgroundTask, ids: list[int]
) -> bool:
    """Queue `task` once per id after commit; with the task queue unreachable, say so in words
    (never a 500) and return False."""
    not_queued: list[int] = []
    with transaction.atomic():
        for pk in ids:
            task.delay_on_commit(pk, on_error=partial(not_queued.append, pk))
    if not_queued:
        model_admin.message_user(
            request,
            f"The task queue is unreachable, so {len(not_queued)} of {len(ids)} could not be "
            "queued. Try again in a minute; if it keeps failing, check the task queue (Redis).",
            level=messages.ERROR,
        )
        return False
    return True


def reonboard_from_admin(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, vehicle_ids: list[int], note: str = ""
) -> None:
    """The admin's "request clearance again" (clearances and vehicles alike), summed up."""
    result = onboarding.reonboard(vehicle_ids, actor=request.user)
    reasons = ", ".join(f"{n} {why}" for why, n in result.skipped_reasons.items())
    model_admin.message_user(
        request,
        f"{result.queued} vehicle(s) queued for clearance."
        + (f" Skipped: {reasons}." if reasons else "")
        + note,
    )


def defleet_from_admin(
    model_admin: admin.ModelAdmin[Any], request: HttpRequest, vehicle_ids: list[int], shown_on: str
) -> None:
    """The admin's "defleet" (clearances and vehicles alike), in the background."""
    count = defleet.queue_defleet(vehicle_ids, actor=request.user)
    model_admin.message_user(
        request,
        f"Defleet queued for {count} vehicle(s); refusals are shown on each {shown_on}.",
        messages.INFO,
    )


# --- credentials ----------------------------------------------------------------------------------


class CredentialAdminForm(CredentialForm):
    class Meta(CredentialForm.Meta):
        fields = ["organization", *CredentialForm.Meta.fields]

    def clean_name(self) -> str:
        self.organization = self.cleaned_data.get("organization") or self.organization
        return super().clean_name()

    def clean(self) -> dict[str, Any]:
        if self.cleaned_data.get("organization") is not None:
            self.organization = self.cleaned_data["organization"]
        return super().clean()


def _set_on(secret: str, when: datetime | None) -> str:
    if not secret:
        return "not set"
    return f"set on {when:%Y-%m-%d %H:%M} UTC" if when else "set"


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin[Credential]):
    form = CredentialAdminForm
    list_display = [
        "name",
        "organization",
        "environment_label",
        "auth_mode",
        "client_id",
        "secrets_summary",
        "last_check_ok",
        "last_check_at",
    ]
    list_filter = ["environment", "auth_mode", "last_check_ok", "organization"]
    search_fields = ["name", "client_id", "organization__name", "organization__slug"]
    list_select_related = ["organization"]
    readonly_fields = [
        "public_id",
        "webhook_url",
        "client_secret_status",
        "private_key_status",
        "webhook_secret_status",
        "mqtt_client_key_status",
        "last_check_at",
        "last_check_ok",
        "last_check_message",
        "created_at",
    ]
    fieldsets = [
        (None, {"fields": ["organization", "name", "environment", "auth_mode", "public_id"]}),
        (
            "Sign-in (secrets are write-only: leave blank to keep, type to replace)",
            {
                "fields": [
                    "client_id",
                    "client_secret",
                    "client_secret_status",
                    "private_key_file",
                    "private_key_pem",
                    "private_key_status",
                    "private_key_id",
                    "service_account_key_id",
                ]
            },
        ),
        ("Webhook", {"fields": ["webhook_url", "webhook_secret", "webhook_secret_status"]}),
        (
            "MQTT streaming",
            {
                "classes": ["collapse"],
                "fields": [
                    "app_id",
                    "mqtt_client_certificate",
                    "mqtt_client_key",
                    "mqtt_client_key_status",
                ],
            },
        ),
        (
            "Last connection test",
            {"fields": ["last_check_at", "last_check_ok", "last_check_message", "created_at"]},
        ),
    ]
    actions = ["test_connection", "sync_now"]

    # The forms take client secrets and private keys: keep them off error reports/debug pages.
    @method_decorator(hide_secrets_from_error_reports)
    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().add_view(request, form_url, extra_context)

    @method_decorator(hide_secrets_from_error_reports)
    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="environment", ordering="environment")
    def environment_label(self, obj: Credential) -> str:
        if obj.environment == Credential.Environment.SIMULATOR:
            return "Simulator (not real HM)"
        return obj.get_environment_display()

    @admin.display(description="secrets")
    def secrets_summary(self, obj: Credential) -> str:
        parts = []
        for label, when in [
            ("client secret", obj.client_secret_set_at),
            ("private key", obj.private_key_set_at),
            ("webhook secret", obj.webhook_secret_set_at),
        ]:
            if when:
                parts.append(f"{label} {when:%Y-%m-%d}")
        return ", ".join(parts) or "none"

    @admin.display(description="webhook URL")
    def webhook_url(self, obj: Credential) -> str:
        return webhook_url_for(obj) if obj.pk else "(after saving)"

    @admin.display(description="client secret")
    def client_secret_status(self, obj: Credential) -> str:
        return _set_on(obj.client_secret, obj.client_secret_set_at)

    @admin.display(description="private key")
    def private_key_status(self, obj: Credential) -> str:
        return _set_on(obj.private_key, obj.private_key_set_at)

    @admin.display(description="webhook secret")
    def webhook_secret_status(self, obj: Credential) -> str:
        return _set_on(obj.webhook_secret, obj.webhook_secret_set_at)

    @admin.display(description="MQTT client key")
    def mqtt_client_key_status(self, obj: Credential) -> str:
        return _set_on(obj.mqtt_client_key, obj.mqtt_client_key_set_at)

    @admin.action(description="Test connection (in the background)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        not_started: list[str] = []

        def could_not_start(credential: Credential) -> None:
            record_check(credential, ok=False, message=CHECK_NOT_STARTED)
            not_started.append(credential.name)

        credentials = list(queryset)
        for credential in credentials:
            record_check(credential, ok=None, message="")
            tasks.test_connection.delay_on_commit(
                credential.pk, on_error=partial(could_not_start, credential)
            )
        if not_started:
            self.message_user(
                request,
                f"Could not start the test for {', '.join(not_started)}: the task queue is "
                "unreachable. Check that Redis (CELERY_BROKER_URL) is running.",
                level=messages.ERROR,
            )
        if started := len(credentials) - len(not_started):
            self.message_user(
                request, f"Testing {started} credential(s); the result appears under “Last test”."
            )

    @admin.action(description="Sync clearances with HM now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Credential]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        if queue_each(self, request, tasks.sync_credential, ids):
            self.message_user(request, f"Sync queued for {len(ids)} credential(s).")


# --- clearances -----------------------------------------------------------------------------------


class ClearanceEventInline(admin.TabularInline[ClearanceEvent, Clearance]):
    """The append-only history: read-only."""

    model = ClearanceEvent
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "from_status", "to_status", "source", "actor", "detail")
    ordering = ["-at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: Clearance | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Clearance | None = None) -> bool:
        return False


@admin.register(Clearance)
class ClearanceAdmin(admin.ModelAdmin[Clearance]):
    list_display = [
        "vin",
        "organization",
        "credential",
        "status",
        "status_changed_at",
        "last_synced_at",
        "short_error",
    ]
    list_filter = [
        "status",
        "credential__environment",
        "vehicle__organization",
        ("credential", CredentialListFilter),
    ]
    search_fields = ["vehicle__vin", "vehicle__license_plate", "vehicle__nickname", "description"]
    list_select_related = ["vehicle__organization", "credential"]
    raw_id_fields = ["vehicle", "credential"]
    # Status moves only through the state machine (the actions below), never by hand.
    readonly_fields = [
        "vehicle",
        "credential",
        "status",
        "status_changed_at",
        "hm_changed_at",
        "status_known_at",
        "requested_at",
        "last_synced_at",
        "description",
        "last_error",
        "last_error_at",
    ]
    inlines = [ClearanceEventInline]
    actions = ["sync_now", "request_again", "defleet"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Clearance]:
        return (
            super().get_queryset(request).select_related("credential").defer(*_CREDENTIAL_SECRETS)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="VIN", ordering="vehicle__vin")
    def vin(self, obj: Clearance) -> str:
        return obj.vehicle.vin

    @admin.display(description="organization", ordering="vehicle__organization__name")
    def organization(self, obj: Clearance) -> Organization:
        return obj.vehicle.organization

    @admin.display(description="last error")
    def short_error(self, obj: Clearance) -> str:
        text = obj.last_error or ""
        return text if len(text) <= 80 else text[:79] + "…"

    @admin.action(description="Sync with HM now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Clearance]) -> None:
        ids = sorted(set(queryset.exclude(credential=None).values_list("credential_id", flat=True)))
        if queue_each(self, request, tasks.sync_credential, ids):
            self.message_user(request, f"Sync queued for {len(ids)} credential(s).")

    @admin.action(description="Request clearance again (rejected, revoked, canceled, error)")
    def request_again(self, request: HttpRequest, queryset: QuerySet[Clearance]) -> None:
        reonboard_from_admin(self, request, list(queryset.values_list("vehicle_id", flat=True)))

    @admin.action(description="Defleet (revoke approved, cancel pending)")
    def defleet(self, request: HttpRequest, queryset: QuerySet[Clearance]) -> None:
        defleet_from_admin(
            self, request, list(queryset.values_list("vehicle_id", flat=True)), "clearance"
        )


# --- tokens and webhooks --------------------------------------------------------------------------


@admin.register(VehicleToken)
class VehicleTokenAdmin(admin.ModelAdmin[VehicleToken]):
    """Legacy per-vehicle tokens: metadata only, the tokens themselves are never shown."""

    list_display = ["vin", "authorization_id", "expires_at", "has_refresh_token", "updated_at"]
    search_fields = ["clearance__vehicle__vin", "authorization_id"]
    list_select_related = ["clearance__vehicle"]
    fields = readonly_fields = (
        "clearance",
        "authorization_id",
        "scope",
        "expires_at",
        "has_refresh_token",
        "updated_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: VehicleToken | None = None) -> bool:
        return False

    @admin.display(description="VIN", ordering="clearance__vehicle__vin")
    def vin(self, obj: VehicleToken) -> str:
        return obj.clearance.vehicle.vin

    @admin.display(description="refresh token", boolean=True)
    def has_refresh_token(self, obj: VehicleToken) -> bool:
        return bool(obj.refresh_token)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin[WebhookDelivery]):
    list_display = ["delivery_id", "event", "credential", "received_at", "processed_at", "result"]
    list_filter = [
        "event",
        ("processed_at", admin.EmptyFieldListFilter),
        ("credential", CredentialListFilter),
    ]
    search_fields = ["delivery_id", "event", "result"]
    list_select_related = ["credential"]
    date_hierarchy = "received_at"
    fields = readonly_fields = (
        "credential",
        "delivery_id",
        "event",
        "received_at",
        "processed_at",
        "result",
        "payload_pretty",
    )
    actions = ["process_again"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookDelivery]:
        return (
            super().get_queryset(request).select_related("credential").defer(*_CREDENTIAL_SECRETS)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookDelivery | None = None
    ) -> bool:
        return False

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookDelivery) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True))

    @admin.action(description="Confirm with HM again (deliveries not yet confirmed)")
    def process_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        waiting = queryset.filter(processed_at=None)
        waiting.update(state=WorkState.PENDING, next_attempt_at=timezone.now())
        ids = list(waiting.values_list("pk", flat=True))
        if queue_each(self, request, tasks.process_webhook, ids):
            self.message_user(request, f"{len(ids)} unconfirmed delivery(ies) queued.")
