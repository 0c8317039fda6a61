"""Admin for vehicles, with their clearance shown read-only."""

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from clearance.admin import defleet_from_admin, reonboard_from_admin
from clearance.models import Clearance
from untrusted.forms import JSON_FORM_FIELD
from vehicles.models import Vehicle


class ClearanceInline(admin.StackedInline):
    """The vehicle's clearance, read-only: it changes only through the lifecycle services."""

    model = Clearance
    extra = 0
    max_num = 1
    can_delete = False
    fields = readonly_fields = (
        "status",
        "credential",
        "status_changed_at",
        "requested_at",
        "last_synced_at",
        "description",
        "last_error",
        "history",
    )

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="history")
    def history(self, obj):
        url = reverse("admin:clearance_clearance_change", args=[obj.pk])
        return format_html('<a href="{}">Clearance and its event history</a>', url)


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = [
        "vin",
        "nickname",
        "brand",
        "license_plate",
        "organization",
        "clearance_status",
        "created_at",
    ]
    list_filter = ["clearance__status", "brand", "organization"]
    search_fields = ["vin", "license_plate", "nickname", "public_id"]
    list_select_related = ["organization", "clearance"]
    readonly_fields = ["public_id", "created_at", "updated_at", "last_seen_at"]
    raw_id_fields = ["organization"]
    inlines = [ClearanceInline]
    actions = ["request_clearance", "defleet"]
    formfield_overrides = {models.JSONField: JSON_FORM_FIELD}

    @admin.display(description="clearance", ordering="clearance__status")
    def clearance_status(self, obj):
        try:
            return obj.clearance.status
        except Vehicle.clearance.RelatedObjectDoesNotExist:
            return "not requested"

    @admin.action(description="Request clearance again (rejected, revoked, canceled, error)")
    def request_clearance(self, request: HttpRequest, queryset: QuerySet[Vehicle]) -> None:
        reonboard_from_admin(
            self,
            request,
            list(queryset.values_list("pk", flat=True)),
            " Vehicles never requested are sent from the fleet page (they need a credential).",
        )

    @admin.action(description="Defleet (revoke approved, cancel pending)")
    def defleet(self, request: HttpRequest, queryset: QuerySet[Vehicle]) -> None:
        defleet_from_admin(self, request, list(queryset.values_list("pk", flat=True)), "vehicle")
