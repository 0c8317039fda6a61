import socket

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_broker(client):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_is_503_when_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"]["ok"] is False
    assert body["database"]["ok"] is True


def test_healthz_is_503_when_database_is_down(client, monkeypatch):
    from fleetportal import health

    monkeypatch.setattr(health, "check_database", lambda: (False, "OperationalError"))
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False, "detail": "OperationalError"}


def test_healthz_names_a_cache_outage_without_failing(client, monkeypatch):
    from fleetportal import health

    monkeypatch.setattr(health, "check_cache", lambda: (False, "ConnectionError"))
    response = client.get(reverse("healthz"))
    assert response.status_code == 200  # work goes on without the cache, only slower
    body = response.json()
    assert body["status"] == "degraded"
    assert body["cache"] == {"ok": False, "detail": "ConnectionError"}


def test_favicon_is_public_and_points_at_the_static_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"].endswith("img/favicon.svg")
