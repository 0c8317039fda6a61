import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.test import RequestFactory

from notifications.models import AlertRule
from organizations.models import Membership, Organization, Role

pytestmark = pytest.mark.django_db


def test_demo_is_idempotent_and_its_printed_login_works(capsys, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)
    call_command("demo")
    first = capsys.readouterr().out
    call_command("demo")
    second = capsys.readouterr().out
    password = next(
        line.split(":", 1)[1].strip() for line in first.splitlines() if "password:" in line
    )
    assert password and f"password: {password}" in second
    assert Organization.objects.filter(name="Demo Fleet").count() == 1
    assert get_user_model().objects.filter(username="demo").count() == 1
    membership = Membership.objects.get(user__username="demo")
    assert membership.role == Role.OWNER
    # Logins are throttled per client address, so authentication always comes with a request.
    request = RequestFactory().post("/login/")
    assert authenticate(request, username="demo", password=password) is not None


def test_the_demo_has_alert_rules_once_and_leaves_the_users_own(capsys):
    call_command("demo")
    organization = Organization.objects.get(name="Demo Fleet")
    names = set(AlertRule.objects.filter(organization=organization).values_list("name", flat=True))
    assert {"Clearance rejected", "Pending over 10 days", "Battery below 25 %"} <= names
    AlertRule.objects.filter(name="Clearance rejected").delete()
    call_command("demo")
    assert not AlertRule.objects.filter(name="Clearance rejected").exists()
    assert "Alert rules:" in capsys.readouterr().out
