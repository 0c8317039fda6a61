"""403/404/500 pages (templates extending base.html) and one log line per 4xx."""

from __future__ import annotations

import re

import pytest
from django.template.loader import get_template
from django.test import Client
from django.urls import reverse

from fleetportal.errors import user_reason
from imports.models import ImportJob
from tests.factories import UserFactory, VehicleFactory

ERROR_URLS = "tests.fleetportal.error_urls"


def body(response) -> str:
    # The CSRF token and the CSP nonce differ on every render; nothing else may.
    text = re.sub(r'"X-CSRFToken": "[^"]*"', "", response.content.decode())
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", text)
    return re.sub(r'nonce="[^"]*"', "", text)


# -- 403 ---------------------------------------------------------------------------------------
@pytest.mark.django_db
@pytest.mark.parametrize("url_name", ["clearance:credentials", "members"])
def test_403_for_a_manager_says_why_within_the_site_layout(manager_client, url_name):
    response = manager_client.get(reverse(url_name))
    page = body(response)
    assert response.status_code == 403
    assert "<title>No access · FleetPortal</title>" in page
    assert 'class="topbar"' in page and 'aria-label="Main"' in page  # navigation kept
    assert "You don’t have access to this page" in page
    assert "This needs the owner role." in page
    assert "<strong>manager</strong> role in Acme Logistics" in page
    assert "ask an owner of Acme Logistics" in page
    assert f'href="{reverse("vehicles:fleet")}"' in page


@pytest.mark.django_db
@pytest.mark.urls(ERROR_URLS)
def test_403_hides_a_message_not_written_by_us(manager_client):
    page = body(manager_client.get("/test-errors/denied-by-a-library/"))
    assert "You don’t have access to this page" in page
    assert "row lock" not in page and "4711" not in page
    response = manager_client.get("/test-errors/denied/")
    assert response.status_code == 403 and 'role="alert"' not in body(response)


def test_user_reason_only_for_our_own_messages():
    from organizations.access import require_role

    class Request:
        membership = type("M", (), {"has_role": lambda self, role: False})()

    with pytest.raises(Exception) as excinfo:
        require_role(Request(), "owner")
    assert user_reason(excinfo.value) == "This needs the owner role."
    from django.core.exceptions import PermissionDenied

    assert user_reason(PermissionDenied("never raised")) == ""  # no traceback: not ours
    assert user_reason(None) == ""


# -- 404 ---------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_404_does_not_tell_another_organizations_object_from_a_missing_one(
    manager_client, other_organization
):
    import uuid

    theirs = ImportJob.objects.create(organization=other_organization)
    vehicle = VehicleFactory(organization=other_organization)
    pages = []
    for name, existing in (
        ("imports:job", theirs.public_id),
        ("vehicles:detail", vehicle.public_id),
    ):
        for public_id in (existing, uuid.uuid4()):
            response = manager_client.get(reverse(name, args=[public_id]))
            assert response.status_code == 404
            pages.append(body(response))
    assert pages[0] == pages[1] and pages[2] == pages[3]
    page = pages[0]
    assert "<title>Page not found · FleetPortal</title>" in page and 'aria-label="Main"' in page
    assert "ImportJob" not in page and "matches the given query" not in page
    assert "Go to the fleet" in page


@pytest.mark.django_db
def test_404_for_anonymous_users_offers_to_log_in(client):
    response = client.get("/no-such-page/")
    page = body(response)
    assert response.status_code == 404 and "Page not found" in page
    assert f'href="{reverse("login")}"' in page and 'aria-label="Main"' not in page


@pytest.mark.django_db
def test_404_for_a_user_without_organization_says_so():
    client = Client()
    client.force_login(UserFactory())
    response = client.get(reverse("imports:upload"))
    assert response.status_code == 404
    assert "not a member of any organization yet" in body(response)


# -- 500 ---------------------------------------------------------------------------------------
def test_500_template_needs_no_context_and_no_database():
    # No django_db mark: any query would fail this test.
    page = get_template("500.html").render()
    assert "<title>Server error · FleetPortal</title>" in page
    assert "Something went wrong on our side" in page and 'href="/"' in page
    assert 'aria-label="Main"' not in page


@pytest.mark.django_db
@pytest.mark.urls(ERROR_URLS)
def test_500_page_is_served_for_an_unhandled_error():
    response = Client(raise_request_exception=False).get("/test-errors/boom/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and "boom" not in page
