"""Access helpers: every object a view touches is looked up through these.

Another organization's object is a 404 (we never confirm it exists); a viewer who tries to
change something gets a 403. See healthchecks' `_get_*_for_user` helpers for the pattern.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from organizations.models import Membership, Organization, Role


def require_membership(request) -> Membership:
    membership = getattr(request, "membership", None)
    if membership is None:
        raise Http404("You are not a member of any organization.")
    return membership


def current_organization(request) -> Organization:
    return require_membership(request).organization


def require_role(request, role: str = Role.MANAGER) -> Membership:
    membership = require_membership(request)
    if not membership.has_role(role):
        raise PermissionDenied(f"This needs the {Role(role).label.lower()} role.")
    return membership


def scoped(
    request, model_or_queryset: type[Model] | QuerySet, *, field: str = "organization"
) -> QuerySet:
    """The queryset limited to the current organization (`field` may traverse, e.g. vehicle__organization)."""
    organization = current_organization(request)
    queryset = (
        model_or_queryset
        if isinstance(model_or_queryset, QuerySet)
        else model_or_queryset._default_manager.all()
    )
    return queryset.filter(**{field: organization})


def get_object_for_user(
    request, model_or_queryset, *, field: str = "organization", role: str | None = None, **lookups
):
    """One object of the current organization, 404 otherwise; with `role`, 403 below that role."""
    if role is not None:
        require_role(request, role)
    return get_object_or_404(scoped(request, model_or_queryset, field=field), **lookups)


def memberships_for(user) -> QuerySet:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__name")
    )
