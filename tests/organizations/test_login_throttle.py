"""Login throttling (django-axes): 5 failed logins for one username from one address pause that
pair for 15 minutes, with words on the login page; failures are logged without the password;
staff unlock in admin; the pause ends by itself; behind proxies the client address comes from
TRUSTED_PROXY_COUNT."""

import logging
import subprocess
import sys
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory
WRONG = "Wrong-Password-1234"


@pytest.fixture
def dora(db):
    return UserFactory(username="dora")


def attempt(client: Client, username: str, password: str, ip: str = "198.51.100.7", **headers):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **headers
    )


def logged_in(client: Client) -> bool:
    return SESSION_KEY in client.session


def fail_until_paused(client: Client, username: str = "dora", ip: str = "198.51.100.7"):
    responses = [attempt(client, username, WRONG, ip) for _ in range(5)]
    assert [r.status_code for r in responses[:4]] == [200] * 4
    return responses[-1]


def test_the_fifth_failure_pauses_the_username_for_this_address(client, dora):
    paused = fail_until_paused(client)
    assert paused.status_code == 429
    page = paused.content.decode()
    until = timezone.localtime(timezone.now() + timedelta(minutes=15))
    assert "Logging in as “dora” is paused until" in page
    assert (
        until.strftime("%H:%M") in page or (until - timedelta(minutes=1)).strftime("%H:%M") in page
    )
    assert "(in 15 minutes)" in page
    assert "ask an administrator to unlock it sooner" in page


def test_the_sixth_attempt_is_refused_even_with_the_right_password(client, dora):
    fail_until_paused(client)
    response = attempt(client, "dora", PASSWORD)
    assert response.status_code == 429
    assert "paused until" in response.content.decode()
    assert not logged_in(client)


def test_a_refused_attempt_does_not_extend_the_pause(client, dora):
    fail_until_paused(client)
    with time_machine.travel(timezone.now() + timedelta(minutes=10)):
        assert attempt(client, "dora", WRONG).status_code == 429
    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=5)):
        assert attempt(client, "dora", PASSWORD).status_code == 302
    assert logged_in(client)


def test_other_usernames_and_other_addresses_are_not_affected(client, dora):
    UserFactory(username="eve")
    fail_until_paused(client, "dora", "198.51.100.7")
    # Another username from the same address.
    eve = Client()
    assert attempt(eve, "eve", PASSWORD, "198.51.100.7").status_code == 302
    assert logged_in(eve)
    # The same username from another address.
    elsewhere = Client()
    assert attempt(elsewhere, "dora", PASSWORD, "203.0.113.9").status_code == 302
    assert logged_in(elsewhere)


def test_failures_below_the_limit_are_forgotten_after_a_successful_login(client, dora):
    for _ in range(4):
        attempt(client, "dora", WRONG)
    assert attempt(client, "dora", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        assert attempt(client, "dora", WRONG).status_code == 200


def test_the_pause_ends_by_itself_after_the_cool_off(client, dora):
    fail_until_paused(client)
    with time_machine.travel(timezone.now() + timedelta(minutes=14, seconds=50)):
        assert attempt(client, "dora", PASSWORD).status_code == 429
    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=5)):
        response = attempt(client, "dora", PASSWORD)
    assert response.status_code == 302
    assert logged_in(client)


def test_the_admin_login_is_throttled_too(client, dora):
    for _ in range(5):
        client.post(
            "/admin/login/", {"username": "dora", "password": WRONG}, REMOTE_ADDR="198.51.100.7"
        )
    response = client.post(
        "/admin/login/", {"username": "dora", "password": PASSWORD}, REMOTE_ADDR="198.51.100.7"
    )
    assert response.status_code == 429
    assert not logged_in(client)


@pytest.fixture
def staff_client(db):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


def test_staff_see_lockouts_in_admin_and_unlock_them(client, dora, staff_client):
    fail_until_paused(client)
    listing = staff_client.get(reverse("admin:organizations_loginlockout_changelist"))
    page = listing.content.decode()
    assert listing.status_code == 200
    assert "dora" in page and "198.51.100.7" in page and "Paused until" in page
    assert WRONG not in page

    attempt_row = AccessAttempt.objects.get(username="dora")
    detail = staff_client.get(
        reverse("admin:organizations_loginlockout_change", args=[attempt_row.pk])
    )
    assert detail.status_code == 200 and WRONG not in detail.content.decode()
    response = staff_client.post(
        reverse("admin:organizations_loginlockout_changelist"),
        {"action": "unlock", "_selected_action": [attempt_row.pk]},
        follow=True,
    )
    assert "Unlocked 1 username/address pair" in response.content.decode()
    assert attempt(client, "dora", PASSWORD).status_code == 302
    assert logged_in(client)


def test_failed_logins_are_logged_with_username_and_address_never_the_password(
    client, dora, caplog
):
    caplog.set_level(logging.DEBUG)
    attempt(client, "dora", WRONG)
    for _ in range(4):
        attempt(client, "dora", WRONG)
    attempt(client, "dora", PASSWORD)
    lines = [record.getMessage() for record in caplog.records]
    ours = [line for line in lines if "login for username" in line]
    assert ours[0] == "Failed login for username 'dora' from 198.51.100.7 (1 of 5)"
    assert ours[4].startswith(
        "Failed login for username 'dora' from 198.51.100.7 (5 of 5): paused until"
    )
    assert ours[5].startswith("Refused login for username 'dora' from 198.51.100.7: paused until")
    assert len(ours) == 6
    everything = "\n".join(lines + [repr(record.args) for record in caplog.records])
    assert WRONG not in everything and PASSWORD not in everything


def test_a_username_with_a_line_break_cannot_forge_a_log_line(client, caplog):
    caplog.set_level(logging.WARNING, logger="fleetportal.login")
    attempt(client, "x\nFailed login for username 'admin'", WRONG)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "fleetportal.login"]
    assert "\n" not in line


class TestBehindAProxy:
    """With TRUSTED_PROXY_COUNT=1 the client is the address the proxy appended to
    X-Forwarded-For; REMOTE_ADDR is the proxy for everybody."""

    PROXY = "10.0.0.2"

    def test_clients_behind_one_proxy_are_counted_apart(self, settings, client, dora):
        settings.TRUSTED_PROXY_COUNT = 1
        for _ in range(5):
            attempt(client, "dora", WRONG, self.PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7")
        assert (
            attempt(client, "dora", PASSWORD, self.PROXY, HTTP_X_FORWARDED_FOR="198.51.100.7")
        ).status_code == 429
        other = Client()
        response = attempt(other, "dora", PASSWORD, self.PROXY, HTTP_X_FORWARDED_FOR="203.0.113.9")
        assert response.status_code == 302
        assert AccessAttempt.objects.get().ip_address == "198.51.100.7"

    def test_addresses_the_client_put_in_front_are_ignored(self, settings, client, dora):
        settings.TRUSTED_PROXY_COUNT = 1
        for n in range(5):
            # A client inventing a new X-Forwarded-For each time; the proxy appends the real one.
            spoofed = f"192.0.2.{n}, 198.51.100.7"
            attempt(client, "dora", WRONG, self.PROXY, HTTP_X_FORWARDED_FOR=spoofed)
        response = attempt(
            client, "dora", PASSWORD, self.PROXY, HTTP_X_FORWARDED_FOR="192.0.2.99, 198.51.100.7"
        )
        assert response.status_code == 429

    def test_without_a_trusted_proxy_the_header_is_ignored(self, settings, client, dora):
        settings.TRUSTED_PROXY_COUNT = 0
        for n in range(5):
            attempt(client, "dora", WRONG, "198.51.100.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        assert attempt(client, "dora", PASSWORD, "198.51.100.7").status_code == 429
        assert AccessAttempt.objects.get().ip_address == "198.51.100.7"


def test_limits_come_from_the_environment():
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_FAILURE_LIMIT, int(s.AXES_COOLOFF_TIME.total_seconds()), "
        "s.TRUSTED_PROXY_COUNT)"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "fleetportal.settings",
        "DJANGO_DEBUG": "1",
        "LOGIN_FAILURE_LIMIT": "3",
        "LOGIN_LOCKOUT_MINUTES": "30",
        "TRUSTED_PROXY_COUNT": "2",
    }
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.stdout.split() == ["3", "1800", "2"], result.stderr
    env["LOGIN_FAILURE_LIMIT"] = "0"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "LOGIN_FAILURE_LIMIT must be at least 1" in result.stderr
