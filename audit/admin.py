from django.contrib import admin

from audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: an audit log nobody can edit or delete by hand (the purge keeps its size)."""

    list_display = ["at", "organization", "actor", "action", "object_type", "object_label", "ip"]
    list_filter = ["action", "organization"]
    search_fields = ["actor", "object_label", "object_id"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
