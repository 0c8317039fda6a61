from functools import cache

from notifications.selectors import BELL_POLL_SECONDS, unread_count


def bell(request):
    """The unread count for the header's bell, counted only if a template shows it."""
    user = getattr(request, "user", None)
    organization = getattr(request, "organization", None)
    if user is None or not user.is_authenticated or organization is None:
        return {}
    return {
        "unread_notifications": cache(lambda: unread_count(user, organization)),
        "bell_poll_seconds": BELL_POLL_SECONDS,
    }
