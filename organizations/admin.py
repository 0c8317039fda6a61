import logging

from axes.admin import AccessAttemptAdmin
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import ActionLocation
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import ValidationError
from django.utils import timezone

from organizations import services
from organizations.models import Invitation, LoginLockout, Membership, Organization, Role

log = logging.getLogger("fleetportal.login")


# --- organizations and memberships: never without an owner ----------------------------------------


class OwnerRequiredFormSet(forms.BaseInlineFormSet):
    """The organization's members as they will be after saving must include an owner."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        if not any(data.get("role") == Role.OWNER for data in kept):
            raise ValidationError(
                services.needs_an_owner_message(self.instance.name or "The organization")
            )


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = OwnerRequiredFormSet
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "public_id", "created_at"]
    search_fields = ["name", "slug", "public_id"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["public_id", "created_at"]
    inlines = [MembershipInline]


def _leaves_no_owner(membership: Membership | None, *, new_role: str | None) -> bool:
    """Whether changing a saved membership to `new_role` (None: deleting it) removes its
    organization's last owner."""
    if membership is None or membership.pk is None or membership.role != Role.OWNER:
        return False
    if new_role == Role.OWNER:
        return False
    return not services.other_owner_count(membership.organization, without=membership)


class MembershipForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "organization", "role"]

    def clean(self):
        data = super().clean() or {}
        saved = Membership.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        moving = saved is not None and data.get("organization") not in (None, saved.organization)
        if _leaves_no_owner(saved, new_role=None if moving else data.get("role")):
            assert saved is not None  # only a saved owner can be the last one
            raise ValidationError(services.needs_an_owner_message(saved.organization))
        return data


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]

    def has_delete_permission(self, request, obj=None):
        if obj is not None and _leaves_no_owner(obj, new_role=None):
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request, action_location=ActionLocation.CHANGE_LIST):
        # Bulk deletion would skip the last-owner rule; memberships are deleted one at a time.
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)
        return actions


class UserMembershipFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        for form in self.forms:
            if not form.cleaned_data or form.instance.pk is None:
                continue
            saved = Membership.objects.select_related("organization").get(pk=form.instance.pk)
            deleting = form.cleaned_data.get("DELETE") or (
                form.cleaned_data.get("organization") != saved.organization
            )
            new_role = None if deleting else form.cleaned_data.get("role")
            if _leaves_no_owner(saved, new_role=new_role):
                raise ValidationError(services.needs_an_owner_message(saved.organization))


class UserMembershipInline(admin.TabularInline):
    model = Membership
    formset = UserMembershipFormSet
    extra = 0
    autocomplete_fields = ["organization"]
    verbose_name = "organization membership"


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class FleetUserAdmin(UserAdmin):
    inlines = [UserMembershipInline]
    list_filter = [*UserAdmin.list_filter, "memberships__role", "memberships__organization"]


# --- invitations ----------------------------------------------------------------------------------


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Read-only: invitations are sent from the members page, where the link is emailed."""

    list_display = ["email", "organization", "role", "status_label", "invited_by", "sent_at"]
    list_filter = ["role", "organization"]
    search_fields = ["email", "organization__name", "invited_by__username"]
    list_select_related = ["organization", "invited_by"]
    exclude = ["token_hash"]
    readonly_fields = [
        "organization",
        "email",
        "role",
        "invited_by",
        "created_at",
        "sent_at",
        "expires_at",
        "accepted_at",
        "accepted_by",
        "revoked_at",
    ]
    actions = ["revoke_selected"]

    @admin.display(description="status")
    def status_label(self, obj):
        return obj.status.label

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke selected invitations (their links stop working)")
    def revoke_selected(self, request, queryset):
        count = queryset.unanswered().update(revoked_at=timezone.now())
        self.message_user(request, f"{count} invitation(s) revoked.", messages.SUCCESS)


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
