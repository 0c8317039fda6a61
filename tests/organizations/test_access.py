import pytest
from django.urls import reverse

from organizations.middleware import SESSION_KEY
from organizations.models import Role
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, OrganizationFactory, VehicleFactory

pytestmark = pytest.mark.django_db


def test_anonymous_user_is_sent_to_login_for_private_pages(client):
    for url in ["/", reverse("vehicles:fleet"), "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert "/login/" in response["Location"]


def test_login_page_and_healthz_are_public(client):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("healthz")).status_code in (200, 503)


def test_login_with_password_then_logout(client, user_factory, organization):
    user = user_factory(username="dispatcher")
    MembershipFactory(user=user, organization=organization, role=Role.MANAGER)
    response = client.post(
        reverse("login"), {"username": "dispatcher", "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert client.get(reverse("vehicles:fleet")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("vehicles:fleet")).status_code == 302


def test_wrong_password_says_so(client, owner_user):
    response = client.post(reverse("login"), {"username": owner_user.username, "password": "nope"})
    assert response.status_code == 200
    assert (
        "didn’t match" in response.content.decode()
        or "didn&#x27;t match" in response.content.decode()
    )


def test_user_sees_only_own_organization_vehicles(owner_client, organization, other_organization):
    VehicleFactory(organization=organization, vin="WVWZZZ1KZ00000001")
    VehicleFactory(organization=other_organization, vin="WVWZZZ1KZ00000002")
    content = owner_client.get(reverse("vehicles:fleet")).content.decode()
    assert "WVWZZZ1KZ00000001" in content
    assert "WVWZZZ1KZ00000002" not in content


def test_cannot_switch_to_organization_user_is_not_member_of(
    owner_client, other_organization, organization
):
    response = owner_client.post(
        reverse("switch_organization"), {"organization": str(other_organization.public_id)}
    )
    assert response.status_code == 404
    assert owner_client.session[SESSION_KEY] == str(organization.public_id)


def test_foreign_organization_in_session_falls_back_to_own(
    owner_user, organization, other_organization
):
    client = logged_in_client(owner_user, other_organization)  # forged session value
    VehicleFactory(organization=other_organization, vin="WVWZZZ1KZ00000009")
    content = client.get(reverse("vehicles:fleet")).content.decode()
    assert "WVWZZZ1KZ00000009" not in content
    assert client.session[SESSION_KEY] == str(organization.public_id)


def test_switcher_lists_and_switches_between_own_organizations(owner_user, organization):
    second = OrganizationFactory(name="Second Fleet")
    MembershipFactory(user=owner_user, organization=second, role=Role.VIEWER)
    VehicleFactory(organization=second, vin="WVWZZZ1KZ00000042")
    client = logged_in_client(owner_user, organization)
    page = client.get(reverse("vehicles:fleet")).content.decode()
    assert "Second Fleet" in page and "Acme Logistics" in page
    response = client.post(
        reverse("switch_organization"),
        {"organization": str(second.public_id), "next": "https://evil.example/"},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert "WVWZZZ1KZ00000042" in client.get(reverse("vehicles:fleet")).content.decode()


def test_user_without_membership_gets_clear_empty_state(client, user_factory):
    client.force_login(user_factory())
    response = client.get(reverse("vehicles:fleet"))
    assert b"not a member of any organization" in response.content


def test_a_fresh_login_opens_the_organization_last_used(owner_user, organization):
    from django.test import Client

    from tests.e2e.conftest import PASSWORD

    second = OrganizationFactory(name="Zeta Fleet")  # after "Acme" by name
    MembershipFactory(user=owner_user, organization=second, role=Role.MANAGER)
    first = Client()
    first.post(reverse("login"), {"username": owner_user.get_username(), "password": PASSWORD})
    first.get(reverse("vehicles:fleet"))
    assert first.session[SESSION_KEY] == str(organization.public_id)  # never chosen: by name
    first.post(reverse("switch_organization"), {"organization": str(second.public_id)})
    fresh = Client()
    fresh.post(reverse("login"), {"username": owner_user.get_username(), "password": PASSWORD})
    fresh.get(reverse("vehicles:fleet"))
    assert fresh.session[SESSION_KEY] == str(second.public_id)
