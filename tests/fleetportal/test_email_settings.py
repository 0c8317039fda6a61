"""EMAIL_URL becomes Django 6.1's MAILERS setting; a malformed value stops start-up naming the
variable and never quoting the password; DEFAULT_FROM_EMAIL comes from the environment."""

import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.views.debug import get_default_exception_reporter_filter

from fleetportal import env

SMTP = "django.core.mail.backends.smtp.EmailBackend"
PASSWORD = "pw-s3cr3t"


@pytest.mark.parametrize(
    ("url", "backend", "options"),
    [
        (
            "smtp://mailer:pw%2Fs3cret@mail.example.com:587/?tls=1",
            SMTP,
            {
                "host": "mail.example.com",
                "port": 587,
                "username": "mailer",
                "password": "pw/s3cret",
                "use_tls": True,
                "timeout": 10,
            },
        ),
        (
            "smtps://mailer:pw@mail.example.com",
            SMTP,
            {
                "host": "mail.example.com",
                "username": "mailer",
                "password": "pw",
                "use_ssl": True,
                "timeout": 10,
            },
        ),
        ("smtp://relay.internal/?timeout=2.5", SMTP, {"host": "relay.internal", "timeout": 2.5}),
        ("console://", "django.core.mail.backends.console.EmailBackend", {}),
        ("locmem://", "django.core.mail.backends.locmem.EmailBackend", {}),
        ("dummy://", "django.core.mail.backends.dummy.EmailBackend", {}),
        (
            "file:///var/lib/fleetportal/mail",
            "django.core.mail.backends.filebased.EmailBackend",
            {"file_path": "/var/lib/fleetportal/mail"},
        ),
    ],
)
def test_email_urls(monkeypatch, url, backend, options):
    monkeypatch.setenv("EMAIL_URL", url)
    assert env.env_email("EMAIL_URL") == {"BACKEND": backend, "OPTIONS": options}


def test_unset_email_url_prints_messages(monkeypatch):
    monkeypatch.delenv("EMAIL_URL", raising=False)
    assert env.env_email("EMAIL_URL")["BACKEND"].endswith("console.EmailBackend")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"smpt://user:{PASSWORD}@mail.example.com", "must start with smtp://"),
        (f"smtp://user:{PASSWORD}@mail.example.com:port/", "the port must be a number"),
        (f"smtp://user:{PASSWORD}@:587/", "must name the mail server"),
        (f"smtp://user:{PASSWORD}@mail.example.com/?tls=maybe", "tls= must be 1 or 0"),
        (f"smtp://user:{PASSWORD}@mail.example.com/?tls=1&ssl=1", "not both"),
        (f"smtp://user:{PASSWORD}@mail.example.com/?starttls=1", "unknown option 'starttls'"),
        (f"smtp://user:{PASSWORD}@mail.example.com/?timeout=soon", "timeout= must be a number"),
        (f"smtp://user:{PASSWORD}@[mail.example.com/", "is not a URL"),
        ("file://relative/folder", "must name a folder"),
        # An unencoded "/" in the password ends the host part early.
        ("smtp://user:pw/s3cr3t@mail.example.com/", "must be percent-encoded"),
    ],
)
def test_malformed_email_urls_name_the_variable_and_hide_the_password(monkeypatch, url, says):
    monkeypatch.setenv("EMAIL_URL", url)
    with pytest.raises(ImproperlyConfigured) as refused:
        env.env_email("EMAIL_URL")
    message = str(refused.value)
    assert message.startswith("EMAIL_URL")
    assert says in message
    assert PASSWORD not in message and "s3cr3t" not in message


def _start(extra: dict[str, str], code: str = "import django; django.setup()"):
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "fleetportal.settings"}
    return subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        env={**base, "DJANGO_DEBUG": "1", **extra},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_malformed_email_url_stops_start_up_without_the_password():
    result = _start({"EMAIL_URL": f"smtp://mailer:{PASSWORD}@mail.example.com:58x7/"})
    assert result.returncode != 0
    assert "EMAIL_URL: the port must be a number" in result.stderr
    assert "s3cr3t" not in result.stderr


def test_a_malformed_sender_stops_start_up():
    result = _start({"DEFAULT_FROM_EMAIL": "FleetPortal <not an address>"})
    assert result.returncode != 0
    assert "DEFAULT_FROM_EMAIL must be an email address" in result.stderr


def test_the_default_sender_is_named_after_the_site():
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEFAULT_FROM_EMAIL)"
    assert _start({"SITE_URL": "https://fleet.example.com"}, code).stdout.strip() == (
        "FleetPortal <noreply@fleet.example.com>"
    )
    assert _start({"SITE_URL": "http://127.0.0.1:8000"}, code).stdout.strip() == (
        "FleetPortal <noreply@localhost>"
    )


def test_sending_with_the_configured_mailer_raises_no_deprecation_warning(tmp_path):
    """The test runner swaps in its memory backend, so the production path is checked in a
    process of its own, with every DeprecationWarning an error."""
    code = (
        "import django; django.setup()\n"
        "from django.core.mail import EmailMultiAlternatives\n"
        "m = EmailMultiAlternatives('Hi', 'text', None, ['dora@example.com'])\n"
        "m.attach_alternative('<p>html</p>', 'text/html')\n"
        "print(m.send(using='default'))\n"
    )
    result = _start({"EMAIL_URL": f"file://{tmp_path}"}, code)
    assert result.returncode == 0, result.stderr
    (sent,) = tmp_path.iterdir()
    assert "To: dora@example.com" in sent.read_text()


@pytest.mark.django_db
def test_deploy_check_warns_when_email_url_is_not_set(settings):
    settings.EMAIL_CONFIGURED = False
    warnings = [m for m in run_checks(include_deployment_checks=True) if m.id == "fleetportal.W003"]
    assert warnings and "EMAIL_URL is not set" in warnings[0].msg
    settings.EMAIL_CONFIGURED = True
    assert not [m for m in run_checks(include_deployment_checks=True) if m.id == "fleetportal.W003"]


def test_error_reports_star_the_mail_servers_password(settings):
    settings.MAILERS = {
        "default": {
            "BACKEND": SMTP,
            "OPTIONS": {"host": "mail.example.com", "username": "u", "password": PASSWORD},
        }
    }
    safe = get_default_exception_reporter_filter().get_safe_settings()
    assert PASSWORD not in repr(safe)
    assert safe["MAILERS"]["default"]["OPTIONS"]["host"] == "mail.example.com"
