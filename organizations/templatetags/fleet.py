"""Template helpers used across the portal (loaded as a builtin)."""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def reltime(value: datetime | None, empty: str = "never"):
    """'3 minutes ago' (or 'in 3 minutes') with the exact time on hover; 'just now' under a
    minute (timesince would say '0 minutes')."""
    if not value:
        return empty
    now = timezone.now()
    exact = timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    if abs((now - value).total_seconds()) < 60:
        text = "just now"
    elif value <= now:
        text = f"{timesince(value, now, depth=1)} ago"
    else:
        text = f"in {timesince(now, value, depth=1)}"
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, text)
