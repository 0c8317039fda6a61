import logging

from axes.admin import AccessAttemptAdmin
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone

from organizations.models import LoginLockout, Membership, Organization

log = logging.getLogger("fleetportal.login")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "public_id", "created_at"]
    search_fields = ["name", "slug", "public_id"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]


class UserMembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["organization"]
    verbose_name = "organization membership"


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class FleetUserAdmin(UserAdmin):
    inlines = [UserMembershipInline]
    list_filter = [*UserAdmin.list_filter, "memberships__role", "memberships__organization"]


# --- login lockouts (django-axes) -----------------------------------------------------------------


@admin.register(LoginLockout)
class LoginLockoutAdmin(AccessAttemptAdmin):
    """Failed logins per username and address; a paused pair is unlocked by deleting its row."""

    list_display = ["username", "ip_address", "failures_since_start", "attempt_time", "state"]
    list_filter = ["attempt_time"]
    actions = ["unlock", "cleanup_expired_attempts"]

    @admin.display(description="state")
    def state(self, obj):
        until = obj.attempt_time + settings.AXES_COOLOFF_TIME
        if obj.failures_since_start >= settings.LOGIN_FAILURE_LIMIT and until > timezone.now():
            return f"Paused until {timezone.localtime(until):%Y-%m-%d %H:%M %Z}"
        if until <= timezone.now():
            return "Expired (no longer counted)"
        return f"{obj.failures_since_start} of {settings.LOGIN_FAILURE_LIMIT} failed attempts"

    @admin.action(description="Unlock: let these usernames log in from these addresses again")
    def unlock(self, request, queryset):
        pairs = list(queryset.values_list("username", "ip_address"))
        queryset.delete()
        for username, address in pairs:
            log.warning(
                "Login unlocked for username %r from %s by staff user %s",
                username,
                address,
                request.user.pk,
            )
        self.message_user(
            request, f"Unlocked {len(pairs)} username/address pair(s).", messages.SUCCESS
        )
