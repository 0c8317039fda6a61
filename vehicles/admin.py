"""Admin for vehicles, with their clearance shown read-only."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from clearance.models import Clearance
from clearance.services import defleet, onboarding
from vehicles.models import Vehicle


class ClearanceInline(admin.StackedInline):
    """The vehicle's clearance, read-only: it changes only through the lifecycle services."""

    model = Clearance
    extra = 0
    max_num = 1
    can_delete = False
    fields = [
        "status",
        "credential",
        "status_changed_at",
        "requested_at",
        "last_synced_at",
        "description",
        "last_error",
        "history",
    ]
    readonly_fields = fields

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

    @admin.display(description="clearance", ordering="clearance__status")
    def clearance_status(self, obj):
        try:
            return obj.clearance.status
        except Vehicle.clearance.RelatedObjectDoesNotExist:
            return "not requested"

    @admin.action(description="Request clearance again (rejected, revoked, canceled, error)")
    def request_clearance(self, request, queryset):
        result = onboarding.reonboard(
            list(queryset.values_list("pk", flat=True)), actor=request.user
        )
        reasons = ", ".join(f"{n} {why}" for why, n in result.skipped_reasons.items())
        self.message_user(
            request,
            f"{result.queued} vehicle(s) queued for clearance."
            + (f" Skipped: {reasons}." if reasons else "")
            + " Vehicles never requested are sent from the fleet page (they need a credential).",
        )

    @admin.action(description="Defleet (revoke approved, cancel pending)")
    def defleet(self, request, queryset):
        count = defleet.queue_defleet(
            list(queryset.values_list("pk", flat=True)), actor=request.user
        )
        self.message_user(
            request,
            f"Defleet queued for {count} vehicle(s); refusals are shown on each vehicle.",
            messages.INFO,
        )
