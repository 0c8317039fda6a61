"""JSON from outside (webhooks, key files, MQTT and REST telemetry, the simulator's API, HM's
answers): deep nesting, NaN and text the database cannot store are refused in words (400 or a
form error), never a RecursionError (500) or a DataError later."""

from __future__ import annotations

import json

import pytest
import responses
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, RequestFactory

from clearance.hm import ClientSecretAuth, HMClient, InvalidResponseError, PrivateKeyAuth
from clearance.models import Credential, WebhookDelivery
from clearance.services.credentials import parse_private_key
from simulator import services as simulator
from telemetry.parse import TelemetryParseError
from telemetry.parse import parse_json as parse_telemetry
from tests.clearance.credential_helpers import p256_pem
from tests.clearance.lifecycle_helpers import post_webhook
from tests.clearance.test_credentials_pages import add_url, base_data
from tests.factories import CredentialFactory, UserFactory, VehicleFactory
from untrusted import MAX_JSON_DEPTH, UntrustedJsonError, parse_json
from vehicles.models import Vehicle

DEEP = 50_000


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


# --- the helper --------------------------------------------------------------------------------


def test_depth_up_to_the_limit_is_read_and_one_more_is_refused():
    assert parse_json(nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(UntrustedJsonError, match=f"nested more than {MAX_JSON_DEPTH} levels"):
        parse_json(nested(MAX_JSON_DEPTH + 1))
    objects = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(UntrustedJsonError, match="nested more than"):
        parse_json(objects)


@pytest.mark.parametrize("data", [nested(DEEP), nested(DEEP).encode(), '{"a":' * DEEP])
def test_thousands_of_levels_are_refused_not_a_recursion_error(data):
    with pytest.raises(UntrustedJsonError) as caught:
        parse_json(data)
    assert isinstance(caught.value, ValueError)  # callers' `except ValueError` still holds


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ('{"name": "a\\u0000b"}', "NUL character"),
        ('{"a\\u0000": 1}', "NUL character"),
        ('["\\ud800"]', r"lone UTF-16 surrogate, U\+D800"),
        ('{"x": NaN}', "contains NaN, which JSON does not allow"),
        ("[-Infinity]", "contains -Infinity"),
        ('{"x": 1e999}', "number too large"),
        ("[" + "9" * 400 + ".5]", "number too large"),
        ('["a", "\\\\u0000 is text", "\\ud83d\\ude97", {"b": "\\ud83d"}]', "U\\+D83D"),
        ("{broken", "not valid: Expecting property name"),
        (b"\xff\xfe{", "not valid UTF-8"),
        ("9" * 5000, "not valid"),
    ],
)
def test_what_cannot_be_stored_or_read_is_refused_in_words(document, words):
    with pytest.raises(UntrustedJsonError, match=words) as caught:
        parse_json(document)
    assert "\x00" not in str(caught.value)


def test_brackets_inside_strings_do_not_count_as_depth():
    text = json.dumps({"a": "[" * 500, "b": '\\"' + "{" * 500, "c": [[["ok"]]]})
    assert parse_json(text)["c"] == [[["ok"]]]


def test_a_surrogate_encoded_in_utf8_bytes_is_refused():
    with pytest.raises(UntrustedJsonError, match="lone UTF-16 surrogate"):
        parse_json(b'["\xed\xa0\x80"]')  # what json.loads would decode with surrogatepass


def test_ordinary_documents_are_unchanged():
    document = {"a": [1, 2.5, None, True, {"b": "Ünïcode ✓ \U0001f697"}], "c": "\\u0000 as text"}
    assert parse_json(json.dumps(document)) == document


# --- the webhook -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "words"),
    [
        (nested(DEEP).encode(), "nested more than"),
        (b'{"vehicle": {"vin": "a\\u0000"}, "event": {"action": "approved"}}', "NUL character"),
    ],
)
def test_a_signed_webhook_nested_too_deep_is_400_and_stores_nothing(body, words):
    credential = CredentialFactory()
    response = post_webhook(Client(), credential, body)
    assert response.status_code == 400
    assert words in response.json()["error"]
    assert not WebhookDelivery.objects.exists()


# --- the credential form ------------------------------------------------------------------------


def deep_key_file() -> str:
    # Under the 64 KB key-file limit, so the JSON reading itself is what refuses it.
    return '{"id": "kid", "private_key": ' + nested(30_000, '"x"') + "}"


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["upload", "paste"])
def test_a_deeply_nested_private_key_json_is_a_form_error(owner_client, how):
    data = base_data(auth_mode="private_key", private_key_id="kid", client_secret="")
    if how == "upload":
        data["private_key_file"] = SimpleUploadedFile("key.json", deep_key_file().encode())
    else:
        data["private_key_pem"] = deep_key_file()
    response = owner_client.post(add_url(), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "The key file looks like JSON but cannot be read." in html
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in html
    assert not Credential.objects.exists()


def test_the_hm_client_key_file_helper_refuses_deep_nesting_in_words():
    with pytest.raises(ValueError, match="not valid JSON"):
        PrivateKeyAuth.from_console_json("cid", deep_key_file())


def test_a_key_file_with_a_nul_is_refused():
    text = json.dumps({"id": "kid\x00", "private_key": p256_pem()})
    with pytest.raises(ValidationError, match="NUL character"):
        parse_private_key(text)


# --- telemetry (MQTT messages, REST answers) ---------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        nested(DEEP).encode(),
        json.dumps({"message_id": "1", "vin": "V\x00", "data": {}}).encode(),
        b'{"message_id": "1", "data": {"diagnostics": {"odometer": [{"data": NaN}]}}}',
    ],
)
def test_telemetry_payloads_that_cannot_be_used_are_parse_errors(payload):
    with pytest.raises(TelemetryParseError, match="not usable JSON"):
        parse_telemetry(payload)


# --- the simulator's HTTP API -----------------------------------------------------------------


@pytest.mark.django_db
def test_the_simulator_answers_400_and_422_to_deep_json():
    client = Client()
    token = client.post(
        "/simulator/v1/access_tokens", nested(DEEP), content_type="application/json"
    )
    assert token.status_code == 400
    _, secrets = simulator.create_app("Deep JSON")
    access = client.post(
        "/simulator/v1/access_tokens",
        {"grant_type": "client_credentials", **secrets_form(secrets)},
        content_type="application/json",
    )
    assert access.status_code in (200, 201), access.content
    listing = client.get(
        "/simulator/v1/fleets/vehicles",
        {"filter": nested(DEEP)},
        headers={"Authorization": f"Bearer {access.json()['access_token']}"},
    )
    assert listing.status_code == 422
    assert "filter should be URL encoded JSON" in listing.content.decode()


def secrets_form(secrets) -> dict[str, str]:
    return {"client_id": secrets.client_id, "client_secret": secrets.client_secret}


# --- HM's answers -------------------------------------------------------------------------------


@responses.activate
def test_an_hm_answer_nested_thousands_deep_is_an_invalid_response():
    base = "https://hm.example"
    responses.add(
        responses.POST,
        f"{base}/v1/access_tokens",
        json={"access_token": "t", "expires_in": 300, "token_type": "bearer"},
    )
    responses.add(responses.GET, f"{base}/v1/fleets/vehicles", body=nested(DEEP))
    client = HMClient(base, ClientSecretAuth("cid", "secret"))
    with pytest.raises(InvalidResponseError):
        client.list_clearances()


# --- JSON that staff type in the admin ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tags", "words"),
    [(nested(DEEP), "nested more than"), ('{"depot": "a\\u0000"}', "NUL character")],
)
def test_admin_json_fields_refuse_deep_or_unstorable_json_in_words(tags, words):
    vehicle = VehicleFactory()
    request = RequestFactory().get("/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    form_class = admin.site._registry[Vehicle].get_form(request, obj=vehicle)
    data = {
        "organization": vehicle.organization_id,
        "vin": vehicle.vin,
        "brand": vehicle.brand,
        "tags": tags,
    }
    form = form_class(data, instance=vehicle)
    assert not form.is_valid()
    assert words in form.errors["tags"][0]
    assert "<textarea" in str(form["tags"])  # the page shows the input again, no 500
