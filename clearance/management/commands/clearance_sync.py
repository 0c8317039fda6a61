"""``python manage.py clearance_sync [--org SLUG]``: sync clearances with HM now, print what changed."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from clearance.hm import HMError
from clearance.management.lookup import credential_for, organization_for
from clearance.models import Credential
from clearance.services import sync


class Command(BaseCommand):
    help = "Sync every credential's clearances with High Mobility now (one list call each)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", help="Only this organization (slug).")
        parser.add_argument("--credential", help="Only this credential (name).")

    def handle(
        self, *args: Any, org: str | None = None, credential: str | None = None, **options: Any
    ) -> None:
        wanted = Credential.objects.select_related("organization").order_by(
            "organization__slug", "name"
        )
        if org:
            organization = organization_for(org)
            wanted = wanted.filter(organization=organization)
            if credential:
                named = credential_for(organization, credential)
                wanted = wanted.filter(pk=named.pk if named else 0)
        elif credential:
            wanted = wanted.filter(name=credential)
        credentials = [c for c in wanted if c.clearances.exists()]
        if not credentials:
            self.stdout.write("No credential has clearances to sync.")
            return
        failures = 0
        for cred in credentials:
            label = f"{cred.organization.slug} / {cred.name}"
            try:
                summary = sync.sync_clearances(cred)
            except (HMError, ValueError) as exc:
                failures += 1
                message = exc.message if isinstance(exc, HMError) else str(exc)
                self.stderr.write(f"{label}: sync failed: {message}")
                continue
            self.stdout.write(
                f"{label}: HM lists {summary.listed} vehicle(s); {summary.changed} change(s)"
                f" on {summary.written} clearance(s)."
            )
            for (before, after), count in sorted(summary.moves.items()):
                self.stdout.write(f"  {before or '—'} -> {after}: {count}")
            for vin, before, after in summary.changes[:50]:
                self.stdout.write(f"    {vin}: {before} -> {after}")
            if len(summary.changes) > 50:
                self.stdout.write(f"    ... and {len(summary.changes) - 50} more")
            if summary.unknown_at_hm:
                self.stdout.write(
                    f"  {summary.unknown_at_hm} sent clearance(s) are not listed by HM."
                )
        if failures:
            raise CommandError(f"{failures} credential(s) could not be synced.")
