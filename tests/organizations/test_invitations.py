"""Members join by invitation, with consent: the owner invites an email with a role, a single-use
link (stored hashed, valid 7 days, revocable) is emailed, and the person joins by accepting it
with the account for that address, or by creating that account when INVITATIONS_CREATE_ACCOUNTS=1.
"""

import hashlib
import re
import smtplib
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth import SESSION_KEY, get_user_model
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from organizations import services
from organizations.models import Invitation, Membership, Role
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_membership(owner_user, organization):
    return Membership.objects.get(user=owner_user, organization=organization)


@pytest.fixture
def invite(owner_client):
    """invite(email, role) -> the link's path, as emailed."""

    def send(email: str = "dora@example.com", role: str = Role.MANAGER) -> str:
        response = owner_client.post(reverse("members"), {"email": email, "role": role})
        assert response.status_code == 302, response.content.decode()[-2000:]
        return link_path(mail.outbox[-1])

    return send


def link_path(message) -> str:
    url = re.search(r"https?://\S+/invitations/[\w-]+/", message.body).group(0)
    return "/invitations/" + url.split("/invitations/", 1)[1]


@pytest.fixture
def dora(db):
    return UserFactory(username="dora", email="dora@example.com")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- the email ------------------------------------------------------------------------------------


def test_the_email_has_text_and_html_parts_with_the_link_built_from_site_url(
    settings, owner_client, owner_user
):
    settings.SITE_URL = "https://fleet.example.com"
    settings.DEFAULT_FROM_EMAIL = "Acme Fleet <fleet@example.com>"
    owner_user.first_name, owner_user.last_name = "Olga", "Owner"
    owner_user.save()
    owner_client.post(reverse("members"), {"email": "dora@example.com", "role": "manager"})
    (message,) = mail.outbox
    link = re.search(r"https://fleet\.example\.com/invitations/[\w-]{40,}/", message.body).group(0)
    assert message.to == ["dora@example.com"]
    assert message.from_email == "Acme Fleet <fleet@example.com>"
    assert message.subject == "Olga Owner invites you to Acme Logistics on FleetPortal"
    assert "as manager: you could see the fleet, and add, import" in message.body
    assert "If you did not expect this invitation, ignore this email" in message.body
    ((html, mimetype),) = message.alternatives
    assert mimetype == "text/html"
    assert f'href="{link}"' in html and "Acme Logistics" in html


def test_the_token_is_stored_only_as_its_hash(invite):
    path = invite()
    token = path.strip("/").split("/")[-1]
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = " ".join(str(v) for v in Invitation.objects.values().get().values())
    assert token not in stored


def test_a_failing_mail_server_saves_nothing_and_says_so(settings, owner_client):
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": 9, "username": "u", "password": "pw-s3cret"},
        }
    }
    response = owner_client.post(
        reverse("members"), {"email": "dora@example.com", "role": "viewer"}
    )
    page = response.content.decode()
    assert "The invitation could not be sent" in page and "Nothing was saved" in page
    assert "pw-s3cret" not in page
    assert not Invitation.objects.exists()


def test_a_refused_message_is_reported_like_an_unreachable_server(monkeypatch, owner_client):
    def refuse(self, messages):
        raise smtplib.SMTPRecipientsRefused({"dora@example.com": (550, b"no such user")})

    monkeypatch.setattr("django.core.mail.backends.locmem.EmailBackend.send_messages", refuse)
    response = owner_client.post(
        reverse("members"), {"email": "dora@example.com", "role": "viewer"}
    )
    assert "(SMTPRecipientsRefused)" in response.content.decode()
    assert not Invitation.objects.exists()


# --- owners only, own organization only -----------------------------------------------------------


def test_viewers_and_managers_cannot_invite(manager_client, viewer_client):
    for client in (manager_client, viewer_client):
        response = client.post(reverse("members"), {"email": "x@example.com", "role": "viewer"})
        assert response.status_code == 403
    assert not Invitation.objects.exists() and not mail.outbox


def test_viewers_and_managers_cannot_revoke_or_send_again(invite, manager_client, viewer_client):
    invite()
    invitation = Invitation.objects.get()
    for client in (manager_client, viewer_client):
        for name in ("invitation_revoke", "invitation_send_again"):
            assert client.post(reverse(name, args=[invitation.pk])).status_code == 403
    invitation.refresh_from_db()
    assert invitation.revoked_at is None and len(mail.outbox) == 1


def test_another_organizations_invitation_is_404(owner_client, other_organization):
    other_owner = MembershipFactory(organization=other_organization, role=Role.OWNER)
    services.invite(other_organization, email="x@example.com", role="viewer", by=other_owner)
    foreign = Invitation.objects.get()
    for name in ("invitation_revoke", "invitation_send_again"):
        assert owner_client.post(reverse(name, args=[foreign.pk])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None and len(mail.outbox) == 1
    assert "x@example.com" not in owner_client.get(reverse("members")).content.decode()


# --- accepting ------------------------------------------------------------------------------------


def test_the_invitee_sees_what_they_accept_and_joins_only_by_accepting(invite, dora, organization):
    path = invite("Dora@EXAMPLE.com")
    client = client_for(dora)
    page = client.get(path)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Join Acme Logistics" in text and "as <strong>manager</strong>" in text
    assert not Membership.objects.filter(user=dora).exists()  # opening the link is not consent

    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == reverse("home")
    membership = Membership.objects.get(user=dora, organization=organization)
    assert membership.role == Role.MANAGER
    # The organization just joined is the current one.
    fleet = client.get(reverse("vehicles:fleet")).content.decode()
    assert "Welcome to Acme Logistics: you are a manager." in fleet


def test_accepting_twice_does_nothing(invite, dora, organization, owner_client):
    path = invite()
    client = client_for(dora)
    client.post(path)
    membership = Membership.objects.get(user=dora, organization=organization)
    # The owner lowers the role meanwhile; accepting again must not restore the invited one.
    owner_client.post(
        reverse("member_update", args=[membership.pk]), {"action": "role", "role": "viewer"}
    )
    again = client.post(path)
    assert again.status_code == 200
    assert "You have joined Acme Logistics" in again.content.decode()
    assert Membership.objects.filter(user=dora).count() == 1
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_a_used_link_is_refused_for_anyone_else(invite, dora):
    path = invite()
    client_for(dora).post(path)
    twin = UserFactory(username="dora2", email="dora@example.com")
    response = client_for(twin).post(path)
    assert response.status_code == 410
    assert "already been used" in response.content.decode()
    assert not Membership.objects.filter(user=twin).exists()


def test_an_expired_link_is_refused_with_words(invite, dora):
    path = invite()
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        response = client_for(dora).post(path)
        assert response.status_code == 410
        text = response.content.decode()
        assert "This invitation expired on" in text and "valid for 7 days" in text
        assert "Ask an owner of Acme Logistics to send it again" in text
    assert not Membership.objects.filter(user=dora).exists()


def test_a_link_still_works_just_before_it_expires(invite, dora):
    path = invite()
    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert client_for(dora).post(path).status_code == 302
    assert Membership.objects.filter(user=dora).exists()


def test_a_revoked_link_is_refused_with_words(invite, dora, owner_client):
    path = invite()
    invitation = Invitation.objects.get()
    response = owner_client.post(reverse("invitation_revoke", args=[invitation.pk]), follow=True)
    assert "is revoked: its link no longer works" in response.content.decode()
    refused = client_for(dora).post(path)
    assert refused.status_code == 410
    assert "withdrawn by Acme Logistics" in refused.content.decode()
    assert not Membership.objects.filter(user=dora).exists()


def test_an_unknown_link_is_404_with_words(dora):
    response = client_for(dora).get("/invitations/not-a-real-token/")
    assert response.status_code == 404
    assert "This invitation link is not valid" in response.content.decode()


def test_logged_in_as_another_account_is_refused_and_offered_to_log_out(invite, viewer_user):
    """The link names a person by address: a forwarded link gives nobody else access."""
    path = invite("dora@example.com")
    client = client_for(viewer_user)
    for response in (client.get(path), client.post(path)):
        assert response.status_code == 403
        text = response.content.decode()
        assert "This invitation is for dora@example.com, but you are logged in as" in text
        assert "Log out and use another account" in text
    assert Membership.objects.filter(user=viewer_user).count() == 1


def test_a_member_already_keeps_their_role_and_the_invitation_is_used(
    owner_client, viewer_user, organization, owner_membership
):
    # Invited before becoming a member some other way (an administrator added them).
    Membership.objects.filter(user=viewer_user).delete()
    services.invite(organization, email=viewer_user.email, role="owner", by=owner_membership)
    MembershipFactory(user=viewer_user, organization=organization, role=Role.VIEWER)
    response = logged_in_client(viewer_user, organization).post(link_path(mail.outbox[-1]))
    assert response.status_code == 302
    assert Membership.objects.get(user=viewer_user).role == Role.VIEWER
    assert Invitation.objects.get().accepted_by == viewer_user


def test_anonymous_visitors_are_asked_to_log_in_and_come_back(invite, dora, client):
    path = invite()
    page = client.get(path)
    assert page.status_code == 200
    text = page.content.decode()
    assert f'href="/login/?next={path}"' in text
    assert "Ask your FleetPortal administrator to create one" in text
    assert "Create account" not in text
    # Logging in through the link's login page lands back on the invitation.
    response = client.post(
        f"/login/?next={path}",
        {"username": "dora", "password": "correct horse battery staple", "next": path},
    )
    assert response["Location"] == path


def test_without_open_sign_up_posting_the_link_creates_no_account(invite, client):
    path = invite("new@example.com")
    response = client.post(
        path,
        {"username": "newbie", "password1": "A-long pass 9876", "password2": "A-long pass 9876"},
    )
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="newbie").exists()


# --- open sign-up by invitation -------------------------------------------------------------------


def test_with_open_sign_up_the_invitee_creates_the_account_and_joins(
    settings, invite, client, organization
):
    settings.INVITATIONS_CREATE_ACCOUNTS = True
    path = invite("new@example.com", Role.VIEWER)
    assert "Create account and join" in client.get(path).content.decode()
    response = client.post(
        path,
        {"username": "newbie", "password1": "A-long pass 9876", "password2": "A-long pass 9876"},
    )
    assert response.status_code == 302
    user = get_user_model().objects.get(username="newbie")
    assert user.email == "new@example.com"
    assert Membership.objects.get(user=user, organization=organization).role == Role.VIEWER
    assert int(client.session[SESSION_KEY]) == user.pk
    # Single use: the link cannot make a second account.
    other = Client().post(
        path,
        {"username": "second", "password1": "A-long pass 9876", "password2": "A-long pass 9876"},
    )
    assert other.status_code == 410
    assert not get_user_model().objects.filter(username="second").exists()


def test_open_sign_up_checks_the_password_like_everywhere_else(settings, invite, client):
    settings.INVITATIONS_CREATE_ACCOUNTS = True
    path = invite("new@example.com")
    response = client.post(path, {"username": "newbie", "password1": "123", "password2": "123"})
    assert response.status_code == 400
    assert "This password is too short" in response.content.decode()
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert Invitation.objects.get().accepted_at is None


def test_open_sign_up_is_not_offered_when_the_address_has_an_account(
    settings, invite, dora, client
):
    settings.INVITATIONS_CREATE_ACCOUNTS = True
    path = invite("dora@example.com")
    assert "Create account" not in client.get(path).content.decode()
    response = client.post(
        path,
        {"username": "dora-2", "password1": "A-long pass 9876", "password2": "A-long pass 9876"},
    )
    assert response.status_code == 400
    assert not get_user_model().objects.filter(username="dora-2").exists()


# --- the owner's side -----------------------------------------------------------------------------


def test_sending_again_gives_a_new_link_and_retires_the_old_one(invite, owner_client, dora):
    old_path = invite()
    invitation = Invitation.objects.get()
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        response = owner_client.post(
            reverse("invitation_send_again", args=[invitation.pk]), follow=True
        )
        assert "Invitation sent again to dora@example.com with a new link" in (
            response.content.decode()
        )
        new_path = link_path(mail.outbox[-1])
        assert new_path != old_path
        client = client_for(dora)
        assert client.post(old_path).status_code == 404
        assert client.post(new_path).status_code == 302


def test_inviting_the_same_address_again_replaces_the_unanswered_invitation(invite, dora):
    first = invite(role=Role.VIEWER)
    second = invite(role=Role.MANAGER)
    client = client_for(dora)
    assert client.post(first).status_code == 410
    assert client.post(second).status_code == 302
    assert Membership.objects.get(user=dora).role == Role.MANAGER


def test_the_members_page_lists_invitations_with_their_status(invite, owner_client, dora):
    invite("pending@example.com")
    invite("revoked@example.com")
    owner_client.post(
        reverse("invitation_revoke", args=[Invitation.objects.get(email="revoked@example.com").pk])
    )
    client_for(dora).post(invite("dora@example.com"))
    with time_machine.travel(timezone.now() - timedelta(days=10)):
        invite("expired@example.com")
    page = owner_client.get(reverse("members")).content.decode().split('id="invitations"')[1]
    rows = {
        email: re.search(rf"<td data-label=\"Email\">{email}</td>.*?</tr>", page, re.S).group(0)
        for email in [
            "pending@example.com",
            "revoked@example.com",
            "dora@example.com",
            "expired@example.com",
        ]
    }
    assert "Waiting for an answer" in rows["pending@example.com"]
    assert "Revoke" in rows["pending@example.com"]
    assert "Revoked" in rows["revoked@example.com"]
    assert "Send again" not in rows["revoked@example.com"]
    assert "Accepted" in rows["dora@example.com"] and "by dora" in rows["dora@example.com"]
    assert "Expired" in rows["expired@example.com"]
    assert "Send again" in rows["expired@example.com"]


def test_the_members_page_lists_invitations_in_a_fixed_number_of_queries(invite, owner_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(reverse("members")).status_code == 200
        return len(captured.captured_queries)

    for n in range(3):
        invite(f"p{n}@example.com")
    few = queries()
    for n in range(3, 13):
        invite(f"p{n}@example.com")
    assert queries() == few
