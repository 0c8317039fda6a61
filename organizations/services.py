"""Membership rules: every organization keeps an owner; people join only by accepting an
invitation sent to their email address."""

import logging
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audit import log as audit
from audit.models import Action
from organizations.models import (
    ROLE_CAN,
    Invitation,
    InvitationStatus,
    Membership,
    Organization,
    Role,
)

log = logging.getLogger(__name__)


# --- owners ---------------------------------------------------------------------------------------


MAKE_ANOTHER_OWNER_FIRST = (
    "Make someone else owner first, otherwise nobody could manage members and credentials."
)


def needs_an_owner_message(organization) -> str:
    return f"{organization} needs at least one owner. {MAKE_ANOTHER_OWNER_FIRST}"


def other_owner_count(organization, *, without: Membership) -> int:
    return (
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .exclude(pk=without.pk)
        .count()
    )


def lock_membership_changes(organization, acting: Membership | None = None) -> None:
    """Serialise member and invitation changes in one organization (a row lock on it), then
    re-check that the acting member is still an owner: two owners demoting each other at the
    same moment must not leave the organization without one."""
    list(Organization.objects.select_for_update().filter(pk=organization.pk).values_list("pk"))
    if acting is not None and not Membership.objects.filter(pk=acting.pk, role=Role.OWNER).exists():
        raise PermissionDenied("Only owners can change members.")


class LastOwner(Exception):
    """The change would leave the organization without an owner (message in words)."""


def remove_member(target: Membership) -> None:
    """Remove a member (under ``lock_membership_changes``); never the last owner."""
    if target.role == Role.OWNER and not other_owner_count(target.organization, without=target):
        raise LastOwner(
            f"{target.user.get_username()} is the last owner. {MAKE_ANOTHER_OWNER_FIRST}"
        )
    target.delete()
    audit.record(
        Action.MEMBER_REMOVED, organization_id=target.organization_id, target=_member(target)
    )


def change_role(target: Membership, role: str) -> bool:
    """Give a member another role (under ``lock_membership_changes``); False when it is the
    role they have already. The last owner stays owner."""
    if (
        target.role == Role.OWNER
        and role != Role.OWNER
        and not other_owner_count(target.organization, without=target)
    ):
        raise LastOwner(
            f"{target.user.get_username()} is the last owner and stays owner. "
            f"{MAKE_ANOTHER_OWNER_FIRST}"
        )
    if role == target.role:
        return False
    before = target.role
    target.role = role
    target.save(update_fields=["role"])
    audit.record(
        Action.MEMBER_ROLE_CHANGED,
        organization_id=target.organization_id,
        target=_member(target, {"role": f"{before} → {role}"}),
    )
    return True


def _member(membership: Membership, details: dict | None = None) -> audit.Target:
    return audit.Target("member", membership.user_id, membership.user.get_username(), details or {})


def _invitation(invitation: Invitation) -> audit.Target:
    return audit.Target("invitation", invitation.pk, invitation.email, {"role": invitation.role})


# --- invitations ----------------------------------------------------------------------------------


class InvitationRefused(Exception):
    """The invitation cannot be accepted (now, or by this account); the message says why."""

    def __init__(self, message: str, *, status: int = 410):
        super().__init__(message)
        self.message = message
        self.status = status


def find_by_token(token: str) -> Invitation | None:
    return (
        Invitation.objects.select_related("organization", "invited_by", "accepted_by")
        .filter(token_hash=Invitation.hash_token(token))
        .first()
    )


def invitation_link(token: str) -> str:
    return f"{settings.SITE_URL}{reverse('invitation', args=[token])}"


def _new_token(invitation: Invitation) -> str:
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    invitation.token_hash = Invitation.hash_token(token)
    invitation.sent_at = now
    invitation.expires_at = now + timedelta(days=settings.INVITATION_VALID_DAYS)
    return token


def send_invitation_email(invitation: Invitation, token: str) -> None:
    inviter = invitation.invited_by
    context = {
        "invitation": invitation,
        "organization": invitation.organization,
        "inviter": (inviter.get_full_name() or inviter.get_username()) if inviter else "An owner",
        "role": Role(invitation.role).label.lower(),
        "role_can": ROLE_CAN[Role(invitation.role)],
        "link": invitation_link(token),
        "valid_days": settings.INVITATION_VALID_DAYS,
        "create_accounts": settings.INVITATIONS_CREATE_ACCOUNTS,
        "site_url": settings.SITE_URL,
    }
    subject = render_to_string("organizations/email/invitation_subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=render_to_string("organizations/email/invitation.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[invitation.email],
    )
    message.attach_alternative(
        render_to_string("organizations/email/invitation.html", context), "text/html"
    )
    message.send(using="default")


def invite(organization, *, email: str, role: str, by: Membership) -> Invitation:
    """Replace any unanswered invitation for this address by a new one and email its link.

    Sending happens inside the transaction: when the mail server refuses, nothing is saved and
    the exception reaches the caller. No account is looked up, so the answer is the same whether
    the address has an account or not.
    """
    with transaction.atomic():
        lock_membership_changes(organization, by)
        Invitation.objects.filter(
            organization=organization, email__iexact=email
        ).unanswered().update(revoked_at=timezone.now())
        invitation = Invitation(
            organization=organization, email=email, role=role, invited_by=by.user
        )
        token = _new_token(invitation)
        invitation.save()
        audit.record(
            Action.INVITATION_SENT, organization=organization, target=_invitation(invitation)
        )
        send_invitation_email(invitation, token)
    log.info("Invitation %s sent for %s", invitation.pk, organization.slug)
    return invitation


def send_again(invitation: Invitation, *, by: Membership) -> Invitation:
    """A new link (the old one stops working) valid for another INVITATION_VALID_DAYS."""
    with transaction.atomic():
        lock_membership_changes(invitation.organization, by)
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if not invitation.can_be_sent_again:
            raise InvitationRefused(
                f"The invitation for {invitation.email} is "
                f"{invitation.status.label.lower()} and cannot be sent again."
            )
        token = _new_token(invitation)
        invitation.save(update_fields=["token_hash", "sent_at", "expires_at"])
        audit.record(
            Action.INVITATION_SENT,
            organization_id=invitation.organization_id,
            target=_invitation(invitation),
        )
        send_invitation_email(invitation, token)
    return invitation


def revoke(invitation: Invitation, *, by: Membership) -> bool:
    """Withdraw an unanswered invitation; False when it was accepted or revoked already."""
    with transaction.atomic():
        lock_membership_changes(invitation.organization, by)
        changed = (
            Invitation.objects.filter(pk=invitation.pk)
            .unanswered()
            .update(revoked_at=timezone.now())
        )
        if changed:
            audit.record(
                Action.INVITATION_REVOKED,
                organization_id=invitation.organization_id,
                target=_invitation(invitation),
            )
    return bool(changed)


def ensure_usable(
    invitation: Invitation | None, user: AbstractBaseUser | None = None
) -> Invitation:
    """The invitation, when `user` can use it now; InvitationRefused with words otherwise."""
    if invitation is None:
        raise InvitationRefused(
            "This invitation link is not valid. Check that you opened the whole link from the "
            "email; if it still does not work, ask for a new invitation.",
            status=404,
        )
    organization = invitation.organization
    status = invitation.status
    if status == InvitationStatus.ACCEPTED:
        raise InvitationRefused(
            "This invitation has already been used: each invitation link works once. Ask an "
            f"owner of {organization} for a new one if you still need access."
        )
    if status == InvitationStatus.REVOKED:
        raise InvitationRefused(
            f"This invitation was withdrawn by {organization}. Ask one of its owners for a new "
            "one if you still need access."
        )
    if status == InvitationStatus.EXPIRED:
        expired = timezone.localtime(invitation.expires_at).strftime("%d %b %Y")
        raise InvitationRefused(
            f"This invitation expired on {expired}: invitations are valid for "
            f"{settings.INVITATION_VALID_DAYS} days. Ask an owner of {organization} to send it "
            "again."
        )
    if user is not None and user.is_authenticated and not _same_email(user, invitation):
        raise InvitationRefused(
            f"This invitation is for {invitation.email}, but you are logged in as "
            f"{user.get_username()}. Log out, then log in with the account for "
            f"{invitation.email} to accept it.",
            status=403,
        )
    return invitation


def _same_email(user, invitation: Invitation) -> bool:
    return bool(user.email) and user.email.casefold() == invitation.email.casefold()


def _lock_for_acceptance(invitation: Invitation) -> Invitation:
    # Only the invitation's row: PostgreSQL cannot lock the nullable side of an outer join.
    return (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("organization")
        .get(pk=invitation.pk)
    )


def accept(invitation: Invitation, user) -> tuple[Membership, bool]:
    """Make `user` a member with the invited role; (membership, created).

    A member already in the organization keeps the role they have; the invitation is used up
    either way. The same user accepting again changes nothing.
    """
    with transaction.atomic():
        invitation = _lock_for_acceptance(invitation)
        if invitation.accepted_by_id == user.pk:
            membership = Membership.objects.filter(
                user=user, organization=invitation.organization
            ).first()
            if membership is not None:
                return membership, False
        ensure_usable(invitation, user)
        membership, created = Membership.objects.get_or_create(
            user=user, organization=invitation.organization, defaults={"role": invitation.role}
        )
        invitation.accepted_at = timezone.now()
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
        if created:
            audit.record(
                Action.MEMBER_JOINED,
                organization_id=invitation.organization_id,
                target=_member(
                    membership, {"role": membership.role, "invitation": invitation.email}
                ),
            )
    log.info(
        "Invitation %s accepted by user %s for %s",
        invitation.pk,
        user.pk,
        invitation.organization.slug,
    )
    return membership, created


def account_exists(email: str) -> bool:
    return get_user_model().objects.filter(email__iexact=email, is_active=True).exists()


def create_account_and_accept(invitation: Invitation, form: Any) -> User:
    """Open sign-up by invitation (INVITATIONS_CREATE_ACCOUNTS=1): the account for the invited
    email, made from the link's form, joins at once. `form` is a valid account form whose
    instance already carries the invited email."""
    if not settings.INVITATIONS_CREATE_ACCOUNTS:
        raise PermissionDenied("Accounts are created by an administrator on this portal.")
    with transaction.atomic():
        invitation = _lock_for_acceptance(invitation)
        ensure_usable(invitation)
        if account_exists(invitation.email):
            raise InvitationRefused(
                f"An account for {invitation.email} exists already: log in with it to accept.",
                status=409,
            )
        user = form.save()
        accept(invitation, user)
    return user
