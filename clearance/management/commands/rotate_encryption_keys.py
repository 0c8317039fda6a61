"""Re-encrypt every encrypted field of every model with the first key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first (FIELD_ENCRYPTION_KEYS=new,old), restart, run this command, then
drop the old key. Rows already on the first key are left alone, so it is safe to run again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Model, TextField, Value
from django.db.models.functions import Cast

from clearance import fields

BATCH = 500


def encrypted_fields() -> Iterator[tuple[type[Model], fields.EncryptedTextField]]:
    """(model, field) for every EncryptedTextField of every installed model."""
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, fields.EncryptedTextField):
                yield model, field


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the first key of FIELD_ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would change; write nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        first = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode())
        total_rotated = total_current = 0
        failures: list[str] = []
        for model, field in encrypted_fields():
            rotated = current = 0
            label = f"{model._meta.label}.{field.name}"
            # Cast to a plain text field: the raw ciphertext, without decryption.
            rows = (
                model._default_manager.exclude(**{field.attname: ""})
                .exclude(**{f"{field.attname}__isnull": True})
                .annotate(_raw=Cast(field.attname, output_field=TextField()))
                .values_list("pk", "_raw")
                .order_by("pk")
            )
            for pk, raw in rows.iterator(chunk_size=BATCH):
                try:
                    first.decrypt(raw.encode())
                    current += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    new = fields.rotate(raw)
                except InvalidToken:
                    failures.append(f"{label} row {pk}")
                    continue
                if not options["dry_run"]:
                    with transaction.atomic():
                        # A Value with a plain TextField: written as is, not encrypted again.
                        model._default_manager.filter(pk=pk).update(
                            **{field.attname: Value(new, output_field=TextField())}
                        )
                rotated += 1
            total_rotated += rotated
            total_current += current
            if rotated or current:
                verb = "would re-encrypt" if options["dry_run"] else "re-encrypted"
                self.stdout.write(f"{label}: {verb} {rotated}, already on the first key {current}")
        summary = (
            f"{'Would re-encrypt' if options['dry_run'] else 'Re-encrypted'} {total_rotated} "
            f"value(s); {total_current} already used the first key."
        )
        if failures:
            raise CommandError(
                f"{summary} {len(failures)} value(s) could not be decrypted with any key in "
                f"FIELD_ENCRYPTION_KEYS (is an old key missing?): {', '.join(failures[:20])}"
            )
        self.stdout.write(self.style.SUCCESS(summary))
