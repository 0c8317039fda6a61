from functools import cache

from django.conf import settings

from notifications.selectors import unread_count


def bell(request):
    """The unread count for the header's bell, counted only if a template shows it. The bell asks
    again every NOTIFICATION_BELL_POLL_SECONDS (one indexed COUNT per open tab), paused while the
    tab is hidden (static/js/notifications.js); marking read reloads the page, and the bell."""
    user = getattr(request, "user", None)
    organization = getattr(request, "organization", None)
    if user is None or not user.is_authenticated or organization is None:
        return {}
    return {
        "unread_notifications": cache(lambda: unread_count(user, organization)),
        "bell_poll_seconds": settings.NOTIFICATION_BELL_POLL_SECONDS,
    }
