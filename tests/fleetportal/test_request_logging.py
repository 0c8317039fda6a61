"""Request errors in the log: one WARNING line per 4xx, the traceback only for 5xx."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.urls import reverse

from fleetportal.errors import ClientErrorLogFilter

ERROR_URLS = "tests.fleetportal.error_urls"


def request_records(caplog):
    return [r for r in caplog.records if r.name.startswith(("django.request", "django.security"))]


@pytest.mark.django_db
def test_a_403_is_one_warning_line_without_traceback(manager_client, manager_user, caplog):
    with caplog.at_level(logging.INFO):
        manager_client.get(reverse("clearance:credentials"))
    [record] = request_records(caplog)
    assert record.levelname == "WARNING" and record.exc_info is None
    message = record.getMessage()
    assert message.startswith(f"403 GET /credentials/ user={manager_user.pk}: Forbidden")
    assert "This needs the owner role." in message
    formatted = logging.getLogger().handlers[0].format(record)
    assert "\n" not in formatted and "Traceback" not in formatted


@pytest.mark.django_db
def test_a_404_is_one_warning_line(manager_client, manager_user, caplog):
    with caplog.at_level(logging.INFO):
        manager_client.get("/fleet/no-such-vehicle/")
    [record] = request_records(caplog)
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage() == (
        f"404 GET /fleet/no-such-vehicle/ user={manager_user.pk}: Not Found"
    )


@pytest.mark.django_db
def test_a_bad_host_is_one_warning_line(client, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get("/", headers={"host": "evil.example"})
    assert response.status_code == 400
    [record] = request_records(caplog)
    assert record.name == "django.security.DisallowedHost"
    assert record.levelname == "WARNING" and record.exc_info is None
    assert record.getMessage().startswith("400 GET / user=")
    assert "evil.example" in record.getMessage()


@pytest.mark.django_db
@pytest.mark.urls(ERROR_URLS)
def test_a_500_keeps_its_traceback(caplog):
    with caplog.at_level(logging.INFO):
        Client(raise_request_exception=False).get("/test-errors/boom/")
    [record] = request_records(caplog)
    assert record.levelname == "ERROR" and record.exc_info is not None
    assert "Traceback" in logging.Formatter().format(record)


def test_the_filter_is_wired_into_the_logging_settings():
    root_console = logging.getLogger().handlers[0]
    assert any(isinstance(f, ClientErrorLogFilter) for f in root_console.filters)
    for name in ("django.request", "django.security.csrf", "django.security.DisallowedHost"):
        assert any(isinstance(f, ClientErrorLogFilter) for f in logging.getLogger(name).filters)
    assert logging.getLogger("django").handlers == []  # no second copy of each request error


def test_the_filter_escapes_line_breaks_and_runs_once():
    record = logging.LogRecord(
        "django.security.csrf", logging.WARNING, __file__, 1, "Forbidden (%s): %s",
        ("bad\r\ntoken", "/x\ny"), None,
    )  # fmt: skip
    record.status_code = 403
    log_filter = ClientErrorLogFilter()
    assert log_filter.filter(record) and log_filter.filter(record)
    message = record.getMessage()
    assert "\n" not in message and "\r" not in message
    assert message.count("403") == 1 and message.startswith("403 - - user=-: Forbidden")
