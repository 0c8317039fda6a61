import pytest
from django.urls import reverse

from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client.force_login(admin)
    return client


def test_admin_lists_and_searches_organizations_users_and_memberships(
    admin_client_logged_in, organization
):
    membership = MembershipFactory(organization=organization)
    for name in ["organizations_organization", "organizations_membership", "auth_user"]:
        response = admin_client_logged_in.get(reverse(f"admin:{name}_changelist"), {"q": "acme"})
        assert response.status_code == 200, name
    page = admin_client_logged_in.get(
        reverse("admin:organizations_organization_change", args=[organization.pk])
    )
    assert membership.user.username in page.content.decode()  # members inline
    filtered = admin_client_logged_in.get(
        reverse("admin:auth_user_changelist"), {"memberships__role": "owner"}
    )
    assert membership.user.username in filtered.content.decode()


def test_admin_pages_need_staff(client, owner_user):
    client.force_login(owner_user)
    assert client.get("/admin/").status_code == 302
