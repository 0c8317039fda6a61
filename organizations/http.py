"""The request as our pages see it: what ``CurrentOrganizationMiddleware`` and django-htmx add.

Annotate a view's request as ``OrganizationRequest`` to use ``request.organization`` and
``request.membership`` with their types (None for a user who belongs to no organization).
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from organizations.models import Membership, Organization


class OrganizationRequest(HttpRequest):
    membership: Membership | None
    organization: Organization | None
    memberships: list[Membership]
    htmx: HtmxDetails
