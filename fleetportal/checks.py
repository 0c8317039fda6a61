"""System checks for deployment settings that Django's own --deploy checks do not cover."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_fleetportal_deploy(app_configs, **kwargs):
    problems = []
    if settings.SIMULATOR_ENABLED:
        problems.append(
            Warning(
                "The offline HM simulator is enabled.",
                hint="Set SIMULATOR_ENABLED=0 in production: the simulator is a stand-in for tests and demos.",
                id="fleetportal.W001",
            )
        )
    if settings.SECRET_KEY.startswith("development-only"):
        problems.append(
            Error("DJANGO_SECRET_KEY is the development default.", id="fleetportal.E001")
        )
    if not settings.SITE_URL.startswith("https://"):
        problems.append(
            Warning(
                "SITE_URL does not use https; HM delivers webhooks to HTTPS URLs only.",
                id="fleetportal.W002",
            )
        )
    return problems
