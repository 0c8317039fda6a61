"""Check a credential against HM: get a token, count clearances, explain failures in words."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clearance.clients import base_url_for
from clearance.management.lookup import credential_for, organization_for
from clearance.models import Clearance
from clearance.services.connection_check import check_connection
from clearance.services.credentials import record_check


class Command(BaseCommand):
    help = (
        "Get a token for a credential and count its clearances at High Mobility. On failure, "
        "say why in words (wrong secret, expired key, clock skew, unreachable host...) and exit 1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--credential", required=True, help="Credential name.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_for(options["org"])
        credential = credential_for(organization, options["credential"])
        assert credential is not None  # --credential is required
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
