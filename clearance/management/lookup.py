"""``--org SLUG`` and ``--credential NAME`` as every management command reads them."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from clearance.models import Credential
from organizations.models import Organization


def organization_for(slug: str) -> Organization:
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        raise CommandError(f"No organization with the slug “{slug}”.")
    return organization


def credential_for(
    organization: Organization, name: str | None, *, required: bool = True
) -> Credential | None:
    """The organization's HM application called ``name``; without a name its only one.

    None when no name was given and the organization has none or several, unless ``required``
    (then an error that asks for ``--credential``). A secret no configured key can decrypt is an
    error in words, not a traceback."""
    credentials = Credential.objects.select_related("organization").filter(
        organization=organization
    )
    try:
        if name:
            credential = credentials.filter(name=name).first()
            if credential is None:
                names = ", ".join(credentials.values_list("name", flat=True)) or "none"
                raise CommandError(
                    f"No HM application named “{name}” in organization “{organization.slug}”. "
                    f"Known: {names}."
                )
            return credential
        found = list(credentials[:2])
    except ImproperlyConfigured as exc:
        raise CommandError(str(exc)) from None
    if len(found) == 1:
        return found[0]
    if required:
        raise CommandError(
            f"Organization “{organization.slug}” has {'no' if not found else 'several'} "
            "credentials (HM applications); name one with --credential."
        )
    return None
