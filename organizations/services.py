"""Membership rules: who may join, and that an organization always keeps an owner.

Role changes in one organization are serialised by a row lock on it, and the acting member is
checked again under that lock: two owners demoting each other at the same moment must not leave
the organization without one.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied

from organizations.models import Membership, Organization, Role


class LastOwner(Exception):
    """The change would leave the organization without an owner (message in words)."""


def add_member(organization: Organization, user: Any, role: str) -> Membership:
    return Membership.objects.create(user=user, organization=organization, role=role)


def lock_membership_changes(organization: Organization, acting: Membership) -> None:
    """Take the organization's lock (inside a transaction), then make sure the acting member is
    still an owner."""
    list(Organization.objects.select_for_update().filter(pk=organization.pk).values_list("pk"))
    if not Membership.objects.filter(pk=acting.pk, role=Role.OWNER).exists():
        raise PermissionDenied("Only owners can change members.")


def remove_member(target: Membership) -> None:
    """Remove a member (under ``lock_membership_changes``); never the last owner."""
    if target.role == Role.OWNER and not _owners_left(target):
        raise LastOwner(
            f"{target.user.get_username()} is the last owner: make someone else owner first, "
            "otherwise nobody could manage members and credentials."
        )
    target.delete()


def change_role(target: Membership, role: str) -> bool:
    """Give a member another role (under ``lock_membership_changes``); False when it is the
    role they have. The last owner stays owner."""
    if target.role == Role.OWNER and role != Role.OWNER and not _owners_left(target):
        raise LastOwner(
            f"{target.user.get_username()} is the last owner and stays owner: make someone "
            "else owner first."
        )
    if role == target.role:
        return False
    target.role = role
    target.save(update_fields=["role"])
    return True


def _owners_left(target: Membership) -> int:
    return (
        Membership.objects.filter(organization_id=target.organization_id, role=Role.OWNER)
        .exclude(pk=target.pk)
        .count()
    )
