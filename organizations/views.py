from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from organizations import services
from organizations.access import require_role
from organizations.middleware import SESSION_KEY
from organizations.models import Membership, Role


@require_POST
def switch_organization(request):
    wanted = request.POST.get("organization", "")
    membership = next(
        (m for m in request.memberships if str(m.organization.public_id) == wanted), None
    )
    if membership is None:
        raise Http404("No such organization.")
    request.session[SESSION_KEY] = str(membership.organization.public_id)
    messages.success(request, f"Now working in {membership.organization.name}.")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    return redirect(next_url)


# --- members (owners only) ------------------------------------------------------------------------


class MemberAddForm(forms.Form):
    user = forms.CharField(
        label="Username or email",
        max_length=254,
        help_text="The person needs a FleetPortal account already; an administrator creates accounts.",
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_user(self):
        wanted = self.cleaned_data["user"].strip()
        users = list(
            get_user_model()
            .objects.filter(Q(username__iexact=wanted) | Q(email__iexact=wanted), is_active=True)
            .order_by("pk")[:2]
        )
        if not users:
            raise forms.ValidationError(
                f"No account with the username or email “{wanted}”. Ask an administrator to "
                "create it first."
            )
        if len(users) > 1:
            raise forms.ValidationError(
                "Several accounts use this email; enter the username instead."
            )
        if Membership.objects.filter(user=users[0], organization=self.organization).exists():
            raise forms.ValidationError(f"{users[0].get_username()} is already a member.")
        return users[0]


@require_http_methods(["GET", "POST"])
def members(request):
    membership = require_role(request, Role.OWNER)
    organization = membership.organization
    form = MemberAddForm(request.POST or None, organization=organization)
    if request.method == "POST":
        if form.is_valid():
            user, role = form.cleaned_data["user"], form.cleaned_data["role"]
            services.add_member(organization, user, role)
            messages.success(
                request,
                f"{user.get_username()} can now use {organization.name} as {Role(role).label.lower()}.",
            )
            return redirect("members")
        messages.error(request, "The member was not added: see the form below.")
    rows = (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("user__username")
    )
    owners = sum(1 for m in rows if m.role == Role.OWNER)
    return render(
        request,
        "organizations/members.html",
        {"form": form, "members": rows, "owner_count": owners, "roles": Role.choices},
    )


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
                if services.change_role(target, request.POST["role"]):
                    messages.success(request, f"{name} is now {target.get_role_display().lower()}.")
            else:
                messages.error(request, "Nothing changed: choose a role or remove.")
        except services.LastOwner as refused:
            messages.error(request, str(refused))
    if target.user_id == request.user.pk and (action == "remove" or target.role != Role.OWNER):
        return redirect("home")  # the members page is for owners only
    return redirect("members")
