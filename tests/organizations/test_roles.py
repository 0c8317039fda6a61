import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from organizations.access import get_object_for_user, require_role
from organizations.models import Membership, Role
from tests.factories import MembershipFactory, VehicleFactory
from vehicles.models import Vehicle

pytestmark = pytest.mark.django_db


def _request_for(membership):
    request = RequestFactory().get("/")
    request.user = membership.user
    request.membership = membership
    request.organization = membership.organization
    return request


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        (Role.VIEWER, Role.VIEWER, True),
        (Role.VIEWER, Role.MANAGER, False),
        (Role.VIEWER, Role.OWNER, False),
        (Role.MANAGER, Role.MANAGER, True),
        (Role.MANAGER, Role.OWNER, False),
        (Role.OWNER, Role.MANAGER, True),
        (Role.OWNER, Role.OWNER, True),
    ],
)
def test_role_ranks(role, needed, allowed, organization):
    membership = MembershipFactory(organization=organization, role=role)
    request = _request_for(membership)
    if allowed:
        assert require_role(request, needed) == membership
    else:
        with pytest.raises(PermissionDenied):
            require_role(request, needed)


def test_object_of_another_organization_is_404(organization, other_organization):
    membership = MembershipFactory(organization=organization, role=Role.OWNER)
    foreign = VehicleFactory(organization=other_organization)
    own = VehicleFactory(organization=organization)
    request = _request_for(membership)
    assert get_object_for_user(request, Vehicle, public_id=own.public_id) == own
    with pytest.raises(Http404):
        get_object_for_user(request, Vehicle, public_id=foreign.public_id)


def test_viewer_changing_is_403_even_for_own_object(organization):
    membership = MembershipFactory(organization=organization, role=Role.VIEWER)
    own = VehicleFactory(organization=organization)
    with pytest.raises(PermissionDenied):
        get_object_for_user(
            _request_for(membership), Vehicle, role=Role.MANAGER, public_id=own.public_id
        )


def test_membership_is_unique_per_user_and_organization(organization):
    membership = MembershipFactory(organization=organization)
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=membership.user, organization=organization, role=Role.VIEWER)
