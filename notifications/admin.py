"""Admin for alerts, notifications, emails and outgoing webhooks.

Alerts, notifications, events and deliveries are records of what happened: read-only here.
Webhook secrets never appear (they are shown once, on the endpoint page, when made).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from durable.models import WorkState
from notifications import outgoing, tasks
from notifications.models import (
    Alert,
    AlertRule,
    Delivery,
    EmailSubscription,
    EventDelivery,
    Notification,
    NotificationSettings,
    OutgoingEmail,
    OutgoingEvent,
    WebhookEndpoint,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "organization",
        "kind",
        "enabled",
        "threshold",
        "scope",
        "email_default",
    ]
    list_filter = ["kind", "enabled", "organization"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "created_by", "created_at", "updated_at"]
    raw_id_fields = ["organization"]

    @admin.display(description="scope")
    def scope(self, obj):
        return obj.scope_label


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["title", "vehicle", "rule_name", "organization", "fired_at", "cleared_at"]
    list_filter = ["kind", "organization"]
    search_fields = ["vehicle__vin", "rule_name", "title", "public_id"]
    list_select_related = ["vehicle", "organization"]
    date_hierarchy = "fired_at"


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["alert", "user", "organization", "created_at", "read_at"]
    list_filter = ["organization"]
    search_fields = ["user__username", "alert__vehicle__vin"]
    list_select_related = ["alert", "alert__vehicle", "user", "organization"]
    raw_id_fields = ["alert", "user"]


@admin.register(NotificationSettings)
class NotificationSettingsAdmin(admin.ModelAdmin):
    list_display = ["user", "time_zone", "digest_hour", "digest_covered_until"]
    search_fields = ["user__username"]
    raw_id_fields = ["user"]


@admin.register(EmailSubscription)
class EmailSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "rule", "mode"]
    list_filter = ["mode"]
    search_fields = ["user__username", "rule__name"]
    raw_id_fields = ["user", "rule"]


def _retry_now(model_admin, request, queryset, wake) -> None:
    with transaction.atomic():
        waiting = queryset.filter(state=WorkState.PENDING)
        rows = list(waiting)
        count = waiting.update(next_attempt_at=timezone.now())
        wake(rows)
    model_admin.message_user(request, f"{count} pending deliveries will be tried at once.")


@admin.display(description="status")
def delivery_status(row: Delivery) -> str:
    return row.get_status_display()


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(ReadOnlyAdmin):
    list_display = [
        "kind",
        "user",
        "organization",
        delivery_status,
        "attempts",
        "created_at",
        "subject",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["user__username", "user__email", "subject"]
    list_select_related = ["user", "organization"]
    actions = ["retry_now"]

    @admin.action(description="Try the selected pending emails now")
    def retry_now(self, request, queryset):
        _retry_now(self, request, queryset, tasks.wake_emails)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Endpoints are made on the portal's webhook page (where the secret is shown once)."""

    list_display = ["url", "organization", "enabled", "failing_since", "last_success_at"]
    list_filter = ["enabled", "organization"]
    search_fields = ["url", "description", "public_id"]
    fields = [
        "organization",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_at",
        "disabled_reason",
        "failing_since",
        "last_success_at",
        "secret_set_at",
        "created_by",
        "created_at",
    ]
    readonly_fields = [
        "organization",
        "disabled_at",
        "failing_since",
        "last_success_at",
        "secret_set_at",
        "created_by",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(OutgoingEvent)
class OutgoingEventAdmin(ReadOnlyAdmin):
    list_display = ["public_id", "type", "organization", "created_at"]
    list_filter = ["type", "organization"]
    search_fields = ["public_id"]


@admin.register(EventDelivery)
class EventDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "event",
        "endpoint",
        delivery_status,
        "attempts",
        "last_status_code",
        "last_attempt_at",
        "next_attempt_at",
    ]
    list_filter = ["state"]
    search_fields = ["event__public_id", "endpoint__url"]
    list_select_related = ["event", "endpoint"]
    actions = ["retry_now", "redeliver"]

    @admin.action(description="Try the selected pending deliveries now")
    def retry_now(self, request, queryset):
        _retry_now(self, request, queryset, tasks.wake_webhooks)

    @admin.action(description="Redeliver the selected events (same event id)")
    def redeliver(self, request, queryset):
        with transaction.atomic():
            rows = list(queryset.select_related("endpoint", "event"))
            for row in rows:
                outgoing.redeliver(row)
        self.message_user(request, f"{len(rows)} events will be delivered again.", messages.INFO)
