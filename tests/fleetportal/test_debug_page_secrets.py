"""The DEBUG error page (and Django's error e-mails) never show the passwords inside connection
URLs: settings, request.META (where runserver copies the environment) and traceback locals."""

from __future__ import annotations

import sys

import pytest
from django.test import Client, RequestFactory
from django.views.debug import ExceptionReporter

from fleetportal.reporting import mask_url_passwords

pytestmark = pytest.mark.django_db

DATABASE_URL = "postgres://fleetportal:db-pw-7f3a9c@postgres:5432/fleetportal"
BROKER_URL = "redis://:broker-pw-2b8e41@redis:6379/0"
CACHE_URL = "rediss://default:cache-pw-9d0c55@cache.example:6380/1"
PASSWORDS = ("db-pw-7f3a9c", "broker-pw-2b8e41", "cache-pw-9d0c55")
STARS = "********************"

ENVIRONMENT = {
    "DATABASE_URL": DATABASE_URL,
    "CELERY_BROKER_URL": BROKER_URL,
    "CACHE_URL": CACHE_URL,
}


@pytest.fixture
def connection_settings(settings):
    settings.DEBUG = True
    settings.CELERY_BROKER_URL = BROKER_URL
    settings.CACHE_URL = CACHE_URL
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": CACHE_URL,  # any name does for locmem: what matters is the page
        }
    }
    return settings


def _failing_connect(url: str) -> None:
    raise ConnectionError("could not connect")


def _technical_500(request) -> str:
    try:
        _failing_connect(DATABASE_URL)
    except ConnectionError:
        return ExceptionReporter(request, *sys.exc_info()).get_traceback_html()
    raise AssertionError("unreachable")


def test_the_technical_500_page_stars_passwords_in_settings_meta_and_locals(
    connection_settings,
):
    html = _technical_500(RequestFactory().get("/fleet/", **ENVIRONMENT))
    assert "could not connect" in html and "CELERY_BROKER_URL" in html and "DATABASE_URL" in html
    for password in PASSWORDS:
        assert password not in html
    # What is left helps debugging: scheme, user, host, port and database are still shown.
    assert f"redis://:{STARS}@redis:6379/0" in html
    assert f"postgres://fleetportal:{STARS}@postgres:5432/fleetportal" in html
    assert f"rediss://default:{STARS}@cache.example:6380/1" in html


@pytest.mark.urls("tests.fleetportal.error_urls")
def test_the_debug_page_served_for_a_crash_shows_no_password(connection_settings):
    client = Client(raise_request_exception=False)
    response = client.get("/test-errors/boom/", **ENVIRONMENT)
    html = response.content.decode()
    assert response.status_code == 500 and "boom: the database said no" in html
    for password in PASSWORDS:
        assert password not in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:p@ss@h:6379/0", f"redis://:{STARS}@h:6379/0"),
        ("amqp://u:a@h1;amqp://u:b@h2//", f"amqp://u:{STARS}@h1;amqp://u:{STARS}@h2//"),
        ("postgres://db.example:5432/fleet", "postgres://db.example:5432/fleet"),
        ("http://host:8000/p?next=a:b@c", "http://host:8000/p?next=a:b@c"),
        ("smtp://mailer@smtp.example:587", "smtp://mailer@smtp.example:587"),
        ("error from sqlite:///var/db.sqlite3", "error from sqlite:///var/db.sqlite3"),
    ],
)
def test_only_the_password_of_a_url_is_starred(text, expected):
    assert mask_url_passwords(text, STARS) == expected
