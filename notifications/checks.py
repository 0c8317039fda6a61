"""Deploy checks of the outgoing webhook settings."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_outgoing_webhooks(app_configs, **kwargs):
    problems = []
    if settings.OUTGOING_WEBHOOKS_ALLOW_PRIVATE:
        problems.append(
            Warning(
                "OUTGOING_WEBHOOKS_ALLOW_PRIVATE is on: webhook endpoints may point at this "
                "machine and the internal network.",
                hint="Set OUTGOING_WEBHOOKS_ALLOW_PRIVATE=0 in production (it is for tests and "
                "local development).",
                id="notifications.W001",
            )
        )
    if not settings.OUTGOING_WEBHOOKS_REQUIRE_HTTPS:
        problems.append(
            Warning(
                "OUTGOING_WEBHOOKS_REQUIRE_HTTPS is off: webhook events may be sent unencrypted.",
                hint="Leave OUTGOING_WEBHOOKS_REQUIRE_HTTPS unset in production.",
                id="notifications.W002",
            )
        )
    return problems
