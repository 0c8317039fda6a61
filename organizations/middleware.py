from datetime import UTC, datetime

from organizations.access import memberships_for

SESSION_KEY = "organization_id"
NEVER = datetime.min.replace(tzinfo=UTC)


def _last_used(membership):
    """Latest choice first; among the never chosen, the first by name (max keeps the first)."""
    return membership.last_used_at or NEVER


class CurrentOrganizationMiddleware:
    """Sets request.membership / request.organization from the session.

    Only organizations the user is a member of can be current; without one in the session (a
    fresh login) or with a stale or foreign id, the organization the user last chose is current
    (``Membership.last_used_at``), else the first by name.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = None
        request.organization = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            memberships = list(memberships_for(user))
            request.memberships = memberships
            wanted = request.session.get(SESSION_KEY)
            chosen = next((m for m in memberships if str(m.organization.public_id) == wanted), None)
            if chosen is None and memberships:
                chosen = max(memberships, key=_last_used)
                request.session[SESSION_KEY] = str(chosen.organization.public_id)
            if chosen is not None:
                request.membership = chosen
                request.organization = chosen.organization
        else:
            request.memberships = []
        return self.get_response(request)
