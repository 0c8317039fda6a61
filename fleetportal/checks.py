"""System checks for deployment settings that Django's own --deploy checks do not cover."""

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

MIN_SECRET_KEY_LENGTH = 50
_GENERATE_KEY = "Generate one with python -c 'import secrets; print(secrets.token_urlsafe(50))'."


@register(Tags.security, deploy=True)
def check_fleetportal_deploy(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if settings.SIMULATOR_ENABLED:
        problems.append(
            Warning(
                "The offline HM simulator is enabled.",
                hint="Set SIMULATOR_ENABLED=0 in production: the simulator is a stand-in for tests and demos.",
                id="fleetportal.W001",
            )
        )
    problems += _secret_key_problems(settings.SECRET_KEY)
    if not settings.SITE_URL.startswith("https://"):
        problems.append(
            Warning(
                "SITE_URL does not use https; HM delivers webhooks to HTTPS URLs only.",
                id="fleetportal.W002",
            )
        )
    if not settings.EMAIL_CONFIGURED:
        problems.append(
            Warning(
                "EMAIL_URL is not set: emails (member invitations, alerts) are printed to the "
                "output of the web and worker processes instead of being sent.",
                hint="Set EMAIL_URL, e.g. smtp://user:password@mail.example.com:587/?tls=1.",
                id="fleetportal.W003",
            )
        )
    return problems


def _secret_key_problems(secret_key: str) -> list[Error]:
    """Messages describe the key (default, placeholder, length), never quote it."""
    if secret_key.startswith("development-only"):
        return [
            Error(
                "DJANGO_SECRET_KEY is the development default.",
                hint=_GENERATE_KEY,
                id="fleetportal.E001",
            )
        ]
    if secret_key.startswith("change-me"):
        return [
            Error(
                "DJANGO_SECRET_KEY is still the placeholder from .env.example.",
                hint=_GENERATE_KEY,
                id="fleetportal.E002",
            )
        ]
    if len(secret_key) < MIN_SECRET_KEY_LENGTH:
        return [
            Error(
                f"DJANGO_SECRET_KEY is {len(secret_key)} characters long; it must be at least "
                f"{MIN_SECRET_KEY_LENGTH} random characters.",
                hint=_GENERATE_KEY,
                id="fleetportal.E003",
            )
        ]
    return []
