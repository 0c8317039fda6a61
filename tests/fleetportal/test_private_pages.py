"""Header and deployment hygiene: pages of logged-in users are never cached, X-Forwarded-Proto
is trusted only when the operator says a proxy sets it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from imports.models import ImportJob
from tests.clearance.lifecycle_helpers import clearance_payload, post_webhook
from tests.factories import CredentialFactory, VehicleFactory
from tests.imports.helpers import fleet_csv

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def directives(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def test_pages_fragments_and_downloads_of_a_logged_in_user_are_private_and_not_stored(
    manager_client, organization
):
    vehicle = VehicleFactory(organization=organization)
    job = ImportJob.objects.create(organization=organization, status="preview")
    job.chunks.create(index=0, data=fleet_csv(1) + b"BAD,bmw,,,,\n")
    responses = {
        "fleet page": manager_client.get(reverse("vehicles:fleet")),
        "vehicle page": manager_client.get(reverse("vehicles:detail", args=[vehicle.public_id])),
        "htmx fragment": manager_client.get(
            reverse("imports:job_status", args=[job.public_id]), headers={"HX-Request": "true"}
        ),
        "fleet export": manager_client.get(reverse("imports:export")),
        "error report": manager_client.get(reverse("imports:error_report", args=[job.public_id])),
        "a 404": manager_client.get("/fleet/no-such-page/"),
    }
    for name, response in responses.items():
        assert {"private", "no-store"} <= directives(response), (name, response.status_code)
        assert "public" not in directives(response), name


def test_static_files_login_and_webhook_keep_their_own_caching(manager_client):
    static = manager_client.get("/static/css/app.css")
    assert static.status_code == 200
    assert "private" not in directives(static) and "no-store" not in directives(static)
    assert b"".join(static.streaming_content)  # read, not closed (closing ends the request)

    login = Client().get(reverse("login"))
    assert login.status_code == 200 and "private" in directives(login)  # Django's never_cache

    credential = CredentialFactory()
    webhook = post_webhook(Client(), credential, clearance_payload("WHM00000000000001", "approved"))
    assert webhook.status_code == 200 and "private" not in directives(webhook)


# --- X-Forwarded-Proto ------------------------------------------------------------------------

PROBE = """
import django
django.setup()
from django.conf import settings
from django.test import RequestFactory
request = RequestFactory().get("/", HTTP_X_FORWARDED_PROTO="https")
print(settings.SECURE_PROXY_SSL_HEADER, request.is_secure())
"""


def _settings_probe(extra_env: dict[str, str]) -> str:
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fleetportal.settings"}
    env |= {"DJANGO_DEBUG": "1", "FLEETPORTAL_VAR_DIR": str(ROOT / "var"), **extra_env}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "None False"),
        ("0", "None False"),
        ("1", "('HTTP_X_FORWARDED_PROTO', 'https') True"),
    ],
)
def test_x_forwarded_proto_is_trusted_only_when_the_operator_says_so(value, expected):
    extra = {} if value is None else {"DJANGO_TRUST_X_FORWARDED_PROTO": value}
    assert _settings_probe(extra) == expected


def test_the_health_check_is_answered_over_plain_http_when_https_is_enforced(settings):
    # docker-compose.yml's health check calls http://127.0.0.1:8000/healthz from inside.
    settings.SECURE_SSL_REDIRECT = True
    assert Client().get(reverse("healthz")).status_code == 200
    assert Client().get(reverse("login")).status_code == 301
