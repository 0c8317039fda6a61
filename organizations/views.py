import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from organizations import services
from organizations.access import get_object_for_user, require_role
from organizations.forms import InvitationForm
from organizations.middleware import SESSION_KEY
from organizations.models import ROLE_CAN, Invitation, Membership, Role

log = logging.getLogger(__name__)


@require_POST
def switch_organization(request):
    wanted = request.POST.get("organization", "")
    membership = next(
        (m for m in request.memberships if str(m.organization.public_id) == wanted), None
    )
    if membership is None:
        raise Http404("No such organization.")
    request.session[SESSION_KEY] = str(membership.organization.public_id)
    Membership.objects.filter(pk=membership.pk).update(last_used_at=timezone.now())
    messages.success(request, f"Now working in {membership.organization.name}.")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    return redirect(next_url)


# --- members (owners only) ------------------------------------------------------------------------

# Answered invitations stay on the members page this long, so owners see who accepted.
ANSWERED_INVITATIONS_SHOWN = timedelta(days=30)
MAIL_FAILED = (
    "The invitation could not be sent: the mail server did not accept it ({error}). Nothing was "
    "saved; try again later, or ask your administrator to check the portal's EMAIL_URL setting."
)


def _invitations_shown(organization):
    recent = timezone.now() - ANSWERED_INVITATIONS_SHOWN
    return (
        Invitation.objects.filter(organization=organization)
        .filter(
            Q(accepted_at__isnull=True, revoked_at__isnull=True)
            | Q(accepted_at__gte=recent)
            | Q(revoked_at__gte=recent)
        )
        .select_related("invited_by", "accepted_by")
        .order_by("-sent_at")
    )


@require_http_methods(["GET", "POST"])
def members(request):
    membership = require_role(request, Role.OWNER)
    organization = membership.organization
    form = InvitationForm(request.POST or None, organization=organization)
    if request.method == "POST":
        if not form.is_valid():
            messages.error(request, "Nobody was invited: see the form below.")
        else:
            email, role = form.cleaned_data["email"], form.cleaned_data["role"]
            try:
                invitation = services.invite(organization, email=email, role=role, by=membership)
            except OSError as exc:  # SMTP errors, refused connections and timeouts
                log.exception("Invitation email for %s could not be sent", organization.slug)
                messages.error(request, MAIL_FAILED.format(error=type(exc).__name__))
            else:
                messages.success(
                    request,
                    f"Invitation sent to {email}. They join {organization.name} as "
                    f"{Role(role).label.lower()} when they accept it; the link is valid until "
                    f"{_day(invitation.expires_at)}.",
                )
                return redirect("members")
    rows = (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__username")
    )
    owners = sum(1 for m in rows if m.role == Role.OWNER)
    return render(
        request,
        "organizations/members.html",
        {
            "form": form,
            "members": rows,
            "owner_count": owners,
            "roles": Role.choices,
            "role_can": [(Role(value).label, ROLE_CAN[Role(value)]) for value in Role.values],
            "invitations": _invitations_shown(organization),
            "answered_days": ANSWERED_INVITATIONS_SHOWN.days,
            "create_accounts": settings.INVITATIONS_CREATE_ACCOUNTS,
            "valid_days": settings.INVITATION_VALID_DAYS,
        },
    )


def _day(moment) -> str:
    return timezone.localtime(moment).strftime("%d %b %Y")


@require_POST
def invitation_revoke(request, pk: int):
    membership = require_role(request, Role.OWNER)
    invitation = get_object_for_user(request, Invitation, pk=pk)
    if services.revoke(invitation, by=membership):
        messages.success(
            request, f"The invitation for {invitation.email} is revoked: its link no longer works."
        )
    else:
        invitation.refresh_from_db()
        messages.error(
            request,
            f"The invitation for {invitation.email} was {invitation.status.label.lower()} "
            "already; nothing changed.",
        )
    return redirect("members")


@require_POST
def invitation_send_again(request, pk: int):
    membership = require_role(request, Role.OWNER)
    invitation = get_object_for_user(request, Invitation, pk=pk)
    try:
        invitation = services.send_again(invitation, by=membership)
    except services.InvitationRefused as refused:
        messages.error(request, refused.message)
    except OSError as exc:
        log.exception("Invitation email for %s could not be sent", membership.organization.slug)
        messages.error(request, MAIL_FAILED.format(error=type(exc).__name__))
    else:
        messages.success(
            request,
            f"Invitation sent again to {invitation.email} with a new link, valid until "
            f"{_day(invitation.expires_at)}; the previous link no longer works.",
        )
    return redirect("members")


@require_POST
def member_update(request, pk: int):
    """Change a member's role or remove them; the last owner can be neither demoted nor removed."""
    membership = require_role(request, Role.OWNER)
    organization = membership.organization
    with transaction.atomic():
        services.lock_membership_changes(organization, membership)
        target = get_object_or_404(
            Membership.objects.select_for_update().select_related("user"),
            pk=pk,
            organization=organization,
        )
        name = target.user.get_username()
        action = request.POST.get("action")
        try:
            if action == "remove":
                services.remove_member(target)
                messages.success(request, f"{name} no longer has access to {organization.name}.")
            elif action == "role" and request.POST.get("role") in Role.values:
                role = request.POST["role"]
                if services.change_role(target, role):
                    messages.success(request, f"{name} is now {Role(role).label.lower()}.")
            else:
                messages.error(request, "Nothing changed: choose a role or remove.")
        except services.LastOwner as refused:
            messages.error(request, str(refused))
    if target.user_id == request.user.pk and (action == "remove" or target.role != Role.OWNER):
        return redirect("home")  # the members page is for owners only
    return redirect("members")
