"""Members page (owners only): invite by email, change roles, remove; never lose the last owner."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from organizations.models import Invitation, Membership, Role
from tests.conftest import logged_in_client
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_only_owners_see_the_members_page(owner_client, manager_client, viewer_client):
    assert owner_client.get(reverse("members")).status_code == 200
    assert manager_client.get(reverse("members")).status_code == 403
    assert viewer_client.get(reverse("members")).status_code == 403
    invite = {"email": "x@example.com", "role": "owner"}
    assert viewer_client.post(reverse("members"), invite).status_code == 403
    assert manager_client.post(reverse("members"), invite).status_code == 403
    assert not Invitation.objects.exists() and not mail.outbox


def _link_in_last_email() -> str:
    return re.search(r"https?://\S+/invitations/[\w-]+/", mail.outbox[-1].body).group(0)


def test_owner_invites_an_existing_account_which_joins_by_accepting(owner_client, organization):
    """What used to be "add by username or email": the person now joins only by accepting."""
    user = UserFactory(username="dora", email="Dora@Example.com")
    response = owner_client.post(
        reverse("members"), {"email": "Dora@Example.com", "role": "manager"}, follow=True
    )
    assert "Invitation sent to Dora@example.com" in response.content.decode()
    assert not Membership.objects.filter(user=user, organization=organization).exists()

    dora = logged_in_client(user, organization)
    path = _link_in_last_email().split("testserver", 1)[-1]
    page = dora.post(path, follow=True).content.decode()
    assert Membership.objects.get(user=user, organization=organization).role == Role.MANAGER
    assert "Welcome to Acme Logistics" in page


def test_inviting_answers_the_same_whether_the_email_has_an_account(owner_client):
    UserFactory(email="known@example.com")
    answers = []
    for email in ["known@example.com", "nobody@example.com"]:
        response = owner_client.post(reverse("members"), {"email": email, "role": "viewer"})
        assert response.status_code == 302
        page = owner_client.get(response["Location"]).content.decode()
        answers.append(re.search(r"Invitation sent to [^<]*", page).group(0).replace(email, "…"))
    assert answers[0] == answers[1]
    assert [m.to for m in mail.outbox] == [["known@example.com"], ["nobody@example.com"]]


def test_inviting_a_current_member_is_refused(owner_client, manager_user):
    response = owner_client.post(
        reverse("members"), {"email": manager_user.email.upper(), "role": "viewer"}
    )
    assert "already a member" in response.content.decode()
    assert not Invitation.objects.exists() and not mail.outbox


def test_owner_changes_a_role_and_removes_a_member(owner_client, organization, manager_user):
    membership = Membership.objects.get(user=manager_user, organization=organization)
    url = reverse("member_update", args=[membership.pk])
    owner_client.post(url, {"action": "role", "role": "viewer"})
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER
    owner_client.post(url, {"action": "remove"})
    assert not Membership.objects.filter(pk=membership.pk).exists()


def test_the_last_owner_can_be_neither_demoted_nor_removed(owner_client, owner_user, organization):
    membership = Membership.objects.get(user=owner_user, organization=organization)
    url = reverse("member_update", args=[membership.pk])
    response = owner_client.post(url, {"action": "role", "role": "viewer"}, follow=True)
    assert "last owner" in response.content.decode()
    response = owner_client.post(url, {"action": "remove"}, follow=True)
    assert "last owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_an_owner_can_step_down_when_another_owner_exists(owner_client, owner_user, organization):
    MembershipFactory(organization=organization, role=Role.OWNER)
    membership = Membership.objects.get(user=owner_user, organization=organization)
    owner_client.post(
        reverse("member_update", args=[membership.pk]), {"action": "role", "role": "manager"}
    )
    membership.refresh_from_db()
    assert membership.role == Role.MANAGER


def test_members_of_another_organization_are_404(owner_client, other_organization):
    foreign = MembershipFactory(organization=other_organization, role=Role.VIEWER)
    response = owner_client.post(reverse("member_update", args=[foreign.pk]), {"action": "remove"})
    assert response.status_code == 404
    assert Membership.objects.filter(pk=foreign.pk).exists()


def test_nav_links_follow_the_role(owner_client, viewer_client):
    owner_page = owner_client.get(reverse("vehicles:fleet")).content.decode()
    assert reverse("members") in owner_page
    viewer_page = viewer_client.get(reverse("vehicles:fleet")).content.decode()
    assert reverse("members") not in viewer_page


def test_an_owner_who_steps_down_lands_on_the_home_page(owner_client, owner_user, organization):
    MembershipFactory(organization=organization, role=Role.OWNER)
    membership = Membership.objects.get(user=owner_user, organization=organization)
    response = owner_client.post(
        reverse("member_update", args=[membership.pk]), {"action": "role", "role": "viewer"}
    )
    # Not back to the members page, which is for owners only and would now answer 403.
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_owners_demoting_each_other_at_once_leave_one_owner(
    monkeypatch, owner_client, owner_user, organization
):
    """Owner B's request passed the role check while B was an owner, but A demoted B before B's
    change ran: B's change is refused under the organization's lock, so A stays owner."""
    from organizations import views

    other_owner = MembershipFactory(organization=organization, role=Role.OWNER)
    mine = Membership.objects.get(user=owner_user, organization=organization)
    # The acting member as the role check saw it, a moment before being demoted.
    seen_as_owner = Membership.objects.get(pk=mine.pk)
    Membership.objects.filter(pk=mine.pk).update(role=Role.MANAGER)
    monkeypatch.setattr(views, "require_role", lambda request, role: seen_as_owner)

    response = owner_client.post(
        reverse("member_update", args=[other_owner.pk]), {"action": "role", "role": "viewer"}
    )
    assert response.status_code == 403
    other_owner.refresh_from_db()
    assert other_owner.role == Role.OWNER
