"""Admin for telemetry snapshots (read-only: they come from HM only)."""

from django.contrib import admin

from telemetry.models import Place, TelemetryPull, TelemetrySnapshot


@admin.register(TelemetrySnapshot)
class TelemetrySnapshotAdmin(admin.ModelAdmin):
    list_display = (
        "vehicle",
        "captured_at",
        "source",
        "odometer_km",
        "fuel_level",
        "battery_level",
        "speed_kmh",
        "received_at",
    )
    list_filter = ("source", "captured_at")
    search_fields = ("vehicle__vin", "vehicle__license_plate", "message_id")
    list_select_related = ("vehicle",)
    raw_id_fields = ("vehicle",)
    date_hierarchy = "captured_at"
    ordering = ("-captured_at",)
    readonly_fields = [f.name for f in TelemetrySnapshot._meta.fields]

    def has_add_permission(self, request):
        return False  # snapshots come from HM only

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Place)
class PlaceAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "latitude", "longitude", "radius_m")
    list_filter = ("organization",)
    search_fields = ("name",)


@admin.register(TelemetryPull)
class TelemetryPullAdmin(admin.ModelAdmin):
    """The pull schedule, for operators: when each vehicle is pulled next and why it waits."""

    list_display = ("vehicle", "state", "next_attempt_at", "attempts", "outcome", "last_error")
    list_filter = ("state", "outcome")
    search_fields = ("vehicle__vin",)
    list_select_related = ("vehicle",)
    ordering = ("next_attempt_at",)
    readonly_fields = [f.name for f in TelemetryPull._meta.fields]

    def has_add_permission(self, request):
        return False  # kept in step with approvals by the schedule

    def has_change_permission(self, request, obj=None):
        return False
