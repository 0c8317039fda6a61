"""Inviting a member in a real Chromium against live_server: the owner invites an address from the
members page, the email's link (built from SITE_URL) is opened by the invitee, who logs in through
it, accepts, and lands in the organization; the owner's page then lists them and the invitation
as accepted."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from organizations.models import Membership, Role
from tests.e2e.conftest import PASSWORD, log_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_owner_invites_and_the_invitee_accepts(
    transactional_db, settings, live_server, new_page, owner_user, organization, screenshots
):
    from playwright.sync_api import expect

    settings.SITE_URL = live_server.url
    dora = UserFactory(username="dora", email="dora@example.com")

    owner = new_page()
    log_in(owner, live_server, owner_user)
    owner.goto(f"{live_server.url}/members/")
    owner.fill("#id_email", "dora@example.com")
    owner.select_option("#id_role", "manager")
    owner.click("button:has-text('Send invitation')")
    expect(owner.locator(".toast")).to_contain_text("Invitation sent to dora@example.com")
    expect(owner.locator("#invitations")).to_contain_text("Waiting for an answer")
    owner.screenshot(path=str(screenshots / "members-invited.png"), full_page=True)

    (message,) = mail.outbox
    link = re.search(r"http://\S+/invitations/[\w-]+/", message.body).group(0)
    assert link.startswith(live_server.url)

    invitee = new_page()
    invitee.goto(link)
    expect(invitee.locator("h1")).to_have_text("Join Acme Logistics")
    invitee.click("text=Log in to accept")
    invitee.fill("input[name=username]", dora.username)
    invitee.fill("input[name=password]", PASSWORD)
    invitee.click("button[type=submit]")
    invitee.wait_for_url(link)
    invitee.screenshot(path=str(screenshots / "invitation-accept.png"), full_page=True)
    invitee.click("button:has-text('Accept and join Acme Logistics')")
    invitee.wait_for_url(f"{live_server.url}/fleet/**")
    expect(invitee.locator(".toast")).to_contain_text("Welcome to Acme Logistics")
    assert Membership.objects.get(user=dora, organization=organization).role == Role.MANAGER

    owner.reload()
    expect(owner.locator(".members-table").first).to_contain_text("dora")
    expect(owner.locator("#invitations")).to_contain_text("Accepted")
    expect(owner.locator("#invitations")).to_contain_text("by dora")
    assert not owner.problems, "\n".join(owner.problems)
    assert not invitee.problems, "\n".join(invitee.problems)
