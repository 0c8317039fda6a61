"""The invitation link: whoever controls the invited address accepts it, logged in with the
account for that address, or (INVITATIONS_CREATE_ACCOUNTS=1) by creating that account here.

Logged in with another account, the page refuses and offers to log out: an invitation names a
person by their address, and a forwarded link must not give someone else access.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from organizations import services
from organizations.forms import InvitationAccountForm
from organizations.middleware import SESSION_KEY
from organizations.models import ROLE_CAN, Membership, Role

TEMPLATE = "organizations/invitation.html"


def _context(invitation, **extra) -> dict:
    context = {
        "invitation": invitation,
        "create_accounts": settings.INVITATIONS_CREATE_ACCOUNTS,
        **extra,
    }
    if invitation is not None:
        context["role"] = Role(invitation.role).label.lower()
        context["role_can"] = ROLE_CAN[Role(invitation.role)]
    return context


def _refused(request, invitation, refused: services.InvitationRefused):
    context = _context(invitation, refused=refused.message)
    return render(request, TEMPLATE, context, status=refused.status)


def _joined(request, membership, created: bool):
    organization = membership.organization
    request.session[SESSION_KEY] = str(organization.public_id)
    if created:
        messages.success(
            request,
            f"Welcome to {organization.name}: you are a {membership.get_role_display().lower()}.",
        )
    else:
        messages.info(
            request,
            f"You are a member of {organization.name} already, as "
            f"{membership.get_role_display().lower()}; your role stays as it is.",
        )
    return redirect("home")


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def invitation(request, token: str):
    invitation = services.find_by_token(token)
    user = request.user if request.user.is_authenticated else None
    if invitation is not None and user is not None and invitation.accepted_by_id == user.pk:
        membership = Membership.objects.filter(
            user=user, organization=invitation.organization
        ).first()
        if membership is not None:  # accepting twice changes nothing
            return render(request, TEMPLATE, _context(invitation, accepted=membership))
    try:
        invitation = services.ensure_usable(invitation, user)
    except services.InvitationRefused as refused:
        return _refused(request, invitation, refused)

    if user is not None:
        if request.method == "POST":
            try:
                membership, created = services.accept(invitation, user)
            except services.InvitationRefused as refused:
                return _refused(request, invitation, refused)
            return _joined(request, membership, created)
        return render(request, TEMPLATE, _context(invitation))

    # Not logged in: log in (and come back here), or create the account when allowed.
    can_create = settings.INVITATIONS_CREATE_ACCOUNTS and not services.account_exists(
        invitation.email
    )
    form = None
    if can_create:
        form = InvitationAccountForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form is not None and form.is_valid():
        try:
            new_user = services.create_account_and_accept(invitation, form)
        except services.InvitationRefused as refused:
            return _refused(request, invitation, refused)
        login(request, new_user, backend="django.contrib.auth.backends.ModelBackend")
        membership = Membership.objects.select_related("organization").get(
            user=new_user, organization=invitation.organization
        )
        return _joined(request, membership, True)
    status = 400 if request.method == "POST" else 200
    return render(request, TEMPLATE, _context(invitation, form=form), status=status)
