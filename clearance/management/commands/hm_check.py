"""Check a credential against HM: get a token, count clearances, explain failures in words."""

from __future__ import annotations

import contextlib

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from clearance.connect import base_url_for, check_connection
from clearance.credential_services import record_check
from clearance.models import Clearance, Credential


class Command(BaseCommand):
    help = (
        "Get a token for a credential and count its clearances at High Mobility. On failure, "
        "say why in words (wrong secret, expired key, clock skew, unreachable host...) and exit 1."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--credential", required=True, help="Credential name.")

    def handle(self, *args, **options):
        try:
            credential = Credential.objects.filter(
                organization__slug=options["org"], name=options["credential"]
            ).first()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if credential is None:
            names = list(
                Credential.objects.filter(organization__slug=options["org"]).values_list(
                    "name", flat=True
                )
            )
            hint = f" Known: {', '.join(names)}." if names else ""
            raise CommandError(
                f"No credential named {options['credential']!r} in organization "
                f"{options['org']!r}.{hint}"
            )
        self.stdout.write(
            f"Credential {credential.name!r}: {credential.get_environment_display()}, "
            f"{credential.get_auth_mode_display()}"
        )
        with contextlib.suppress(ValueError):
            self.stdout.write(f"  High Mobility at {base_url_for(credential)}")
        result = check_connection(credential)
        record_check(credential, ok=result.ok, message=result.message)
        if not result.ok:
            raise CommandError(f"Check failed ({result.kind}): {result.message}")
        self.stdout.write(
            f"  Token: OK, valid for {result.token_expires_in} s"
            + (f"; scopes: {' '.join(result.scopes)}" if result.scopes else "")
        )
        breakdown = ", ".join(f"{status} {n}" for status, n in result.by_status.items())
        self.stdout.write(
            f"  Clearances at High Mobility: {result.clearances}"
            + (f" ({breakdown})" if breakdown else "")
        )
        local = Clearance.objects.filter(credential=credential).count()
        self.stdout.write(f"  Clearances in FleetPortal through this credential: {local}")
        self.stdout.write(self.style.SUCCESS(result.message))
