import pytest
from django.urls import reverse

from organizations import services
from organizations.models import Membership, Organization, Role
from tests.factories import MembershipFactory, UserFactory

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


# --- an organization always keeps an owner --------------------------------------------------------


def _inline(prefix: str, rows: list[dict], initial: int = 0) -> dict:
    data = {
        f"{prefix}-TOTAL_FORMS": str(len(rows)),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }
    for n, row in enumerate(rows):
        data.update({f"{prefix}-{n}-{key}": value for key, value in row.items()})
    return data


def test_admin_cannot_add_an_organization_without_an_owner(admin_client_logged_in):
    manager = UserFactory()
    url = reverse("admin:organizations_organization_add")
    data = {"name": "Nobody Owns It", "slug": "nobody"}
    response = admin_client_logged_in.post(
        url, {**data, **_inline("memberships", [{"user": manager.pk, "role": "manager"}])}
    )
    assert response.status_code == 200
    assert "Nobody Owns It needs at least one owner" in response.content.decode()
    assert not Organization.objects.filter(slug="nobody").exists()

    response = admin_client_logged_in.post(
        url, {**data, **_inline("memberships", [{"user": manager.pk, "role": "owner"}])}
    )
    assert response.status_code == 302
    assert Organization.objects.get(slug="nobody").memberships.get().role == Role.OWNER


def test_admin_cannot_demote_or_remove_an_organizations_last_owner(
    admin_client_logged_in, organization, owner_user
):
    owner = Membership.objects.get(user=owner_user)
    url = reverse("admin:organizations_organization_change", args=[organization.pk])
    base = {"name": organization.name, "slug": organization.slug}
    row = {"id": owner.pk, "organization": organization.pk, "user": owner_user.pk}
    for change in ({"role": "viewer"}, {"role": "owner", "DELETE": "on"}):
        response = admin_client_logged_in.post(
            url, {**base, **_inline("memberships", [{**row, **change}], initial=1)}
        )
        assert response.status_code == 200
        assert "Acme Logistics needs at least one owner" in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_membership_and_user_admin_keep_the_last_owner_too(
    admin_client_logged_in, organization, owner_user
):
    owner = Membership.objects.get(user=owner_user)
    change = reverse("admin:organizations_membership_change", args=[owner.pk])
    response = admin_client_logged_in.post(
        change, {"user": owner_user.pk, "organization": organization.pk, "role": "manager"}
    )
    assert "needs at least one owner" in response.content.decode()
    delete = reverse("admin:organizations_membership_delete", args=[owner.pk])
    assert admin_client_logged_in.post(delete, {"post": "yes"}).status_code == 403

    user_change = reverse("admin:auth_user_change", args=[owner_user.pk])
    page = admin_client_logged_in.get(user_change)
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update({"date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})
    data.update(
        _inline(
            "memberships",
            [
                {
                    "id": owner.pk,
                    "user": owner_user.pk,
                    "organization": organization.pk,
                    "role": "viewer",
                }
            ],
            initial=1,
        )
    )
    response = admin_client_logged_in.post(user_change, data)
    assert "needs at least one owner" in response.content.decode()
    owner.refresh_from_db()
    assert owner.role == Role.OWNER

    # With a second owner the first may step down.
    MembershipFactory(organization=organization, role=Role.OWNER)
    response = admin_client_logged_in.post(
        change, {"user": owner_user.pk, "organization": organization.pk, "role": "manager"}
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.role == Role.MANAGER


def test_admin_lists_invitations_without_their_token_and_revokes_them(
    admin_client_logged_in, organization
):
    owner = MembershipFactory(organization=organization, role=Role.OWNER)
    invitation = services.invite(organization, email="dora@example.com", role="viewer", by=owner)
    listing = admin_client_logged_in.get(reverse("admin:organizations_invitation_changelist"))
    page = listing.content.decode()
    assert "dora@example.com" in page and "Waiting for an answer" in page
    detail = admin_client_logged_in.get(
        reverse("admin:organizations_invitation_change", args=[invitation.pk])
    ).content.decode()
    assert invitation.token_hash not in detail and invitation.token_hash not in page
    admin_client_logged_in.post(
        reverse("admin:organizations_invitation_changelist"),
        {"action": "revoke_selected", "_selected_action": [invitation.pk]},
    )
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
