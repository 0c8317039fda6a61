from django.contrib import admin

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Listed for operators; the token itself is never stored, so nothing here can reveal it."""

    list_display = [
        "name",
        "organization",
        "prefix",
        "scope",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", "organization"]
    search_fields = ["name", "prefix", "organization__name"]
    readonly_fields = [
        "public_id",
        "organization",
        "name",
        "scope",
        "prefix",
        "created_by",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    exclude = ["token_hash"]

    def has_add_permission(self, request):
        return False
