"""API tokens: created by owners and shown once, stored hashed, revoked, expired, scoped."""

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import ApiToken, Scope
from api.tokens import create_token, revoke_token
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_owner_creates_a_token_shown_once_and_stored_hashed(owner_client, organization):
    response = owner_client.post(
        "/settings/api-tokens/", {"name": "Data warehouse", "scope": "write"}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(organization=organization)
    text = response.context["created"]["text"]
    assert text.startswith("fpt_") and len(text) > 40
    assert text in response.content.decode()
    assert token.token_hash == ApiToken.hash_token(text)
    assert text not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    assert token.scope == Scope.WRITE and token.prefix == text[:12]
    # Never shown again.
    again = owner_client.get("/settings/api-tokens/")
    assert text not in again.content.decode()
    assert token.prefix in again.content.decode()
    assert ApiClient(text).get("/api/v1/vehicles").status_code == 200


def test_expiry_in_the_past_is_refused_in_words(owner_client, organization):
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = owner_client.post(
        "/settings/api-tokens/", {"name": "x", "scope": "read", "expires_on": yesterday}
    )
    assert "Choose a day after today" in response.content.decode()
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("who", ["manager_client", "viewer_client"])
def test_only_owners_manage_tokens(request, who, organization):
    client = request.getfixturevalue(who)
    assert client.get("/settings/api-tokens/").status_code == 403
    assert client.post("/settings/api-tokens/", {"name": "x", "scope": "read"}).status_code == 403
    assert not ApiToken.objects.exists()


def test_owner_revokes_and_the_token_stops_working(owner_client, organization, owner_user):
    token, text = create_token(organization, name="FMS", by=owner_user)
    assert ApiClient(text).get("/api/v1/vehicles").status_code == 200
    response = owner_client.post(f"/settings/api-tokens/{token.public_id}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == owner_user
    answer = ApiClient(text).get("/api/v1/vehicles")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert answer["WWW-Authenticate"].startswith("Bearer")


def test_another_organizations_owner_cannot_revoke(other_organization, owner_client):
    token, _ = create_token(other_organization, name="Theirs")
    assert owner_client.post(f"/settings/api-tokens/{token.public_id}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer nope", "Bearer fpt_unknown", "Basic dXNlcjpwYXNz"],
)
def test_missing_or_unknown_tokens_are_401_in_the_error_shape(db, header):
    client = ApiClient(None)
    response = client.get("/api/v1/vehicles", **({"Authorization": header} if header else {}))
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "unauthenticated"
    assert "Authorization: Bearer" in body["error"]["message"]


def test_expired_token_is_401(organization):
    token, text = create_token(
        organization, name="old", expires_at=timezone.now() + timedelta(days=1)
    )
    assert ApiClient(text).get("/api/v1/vehicles").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert ApiClient(text).get("/api/v1/vehicles").status_code == 401


def test_last_used_is_recorded_at_most_once_a_minute(organization, django_assert_num_queries):
    token, text = create_token(organization, name="FMS")
    assert token.last_used_at is None
    ApiClient(text).get("/api/v1/vehicles")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    ApiClient(text).get("/api/v1/vehicles")
    token.refresh_from_db()
    assert token.last_used_at == first


def test_revoking_twice_is_harmless(organization):
    token, _ = create_token(organization, name="FMS")
    assert revoke_token(token) is True
    assert revoke_token(token) is False


def test_admin_lists_tokens_without_their_hash(admin_client, organization):
    token, text = create_token(organization, name="Listed")
    listing = admin_client.get("/admin/api/apitoken/").content.decode()
    assert "Listed" in listing
    page = admin_client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()
    assert token.token_hash not in page and text not in page


def test_every_endpoint_needs_a_token_but_the_schema_and_reference_are_public(db):
    client = ApiClient(None)
    for path in (
        "/api/v1/vehicles",
        f"/api/v1/vehicles/{'W' * 17}",
        f"/api/v1/vehicles/{'W' * 17}/events",
        f"/api/v1/vehicles/{'W' * 17}/telemetry",
        "/api/v1/changes",
    ):
        assert client.get(path).status_code == 401, path
    for path in ("/api/v1/vehicles", "/api/v1/vehicles/defleet"):
        assert client.post(path, {}).status_code == 401, path
    assert client.get("/api/v1/openapi.json").status_code == 200
    reference = client.get("/api/v1/docs/")
    assert reference.status_code == 200
    page = reference.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    assert "script-src 'self'" in reference["Content-Security-Policy"]
