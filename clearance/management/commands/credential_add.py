"""Add an HM credential from files, so secrets never appear on the command line or in shell history."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from clearance.models import Credential
from clearance.services.credentials import credential_create, parse_private_key
from clearance.services.webhooks import webhook_url_for
from organizations.models import Organization


def _read(path: str, what: str) -> str:
    """A file's text ("-" reads standard input); the value itself is never echoed."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CommandError(f"Cannot read the {what} file {path}: {exc.strerror}.") from None
    except UnicodeDecodeError:
        raise CommandError(f"The {what} file {path} is not text.") from None
    return text


def _words(error: ValidationError) -> str:
    return " ".join(error.messages)


class Command(BaseCommand):
    help = (
        "Add a High Mobility credential to an organization. Secrets are read from files "
        "(use - for standard input) and stored encrypted; they are never printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--name", required=True, help="A name for the credential.")
        parser.add_argument(
            "--environment", required=True, choices=[c for c, _ in Credential.Environment.choices]
        )
        parser.add_argument("--client-id", default="", help="The OAuth client id.")
        parser.add_argument("--client-secret-file", help="File holding the OAuth client secret.")
        parser.add_argument(
            "--private-key-file",
            help="The console's private-key JSON file (holds the key id) or a PEM file.",
        )
        parser.add_argument(
            "--private-key-id", default="", help="Private key id (when the key file is a PEM)."
        )
        parser.add_argument(
            "--service-account-key-id",
            default="",
            help="Legacy service account API key id (with --private-key-file).",
        )
        parser.add_argument("--webhook-secret-file", help="File holding the webhook secret.")
        parser.add_argument("--app-id", default="", help="HM application id (for MQTT topics).")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with the slug {options['org']!r}.")
        secrets: dict[str, str] = {}
        key_id_from_file = ""
        if options["private_key_file"]:
            text = _read(options["private_key_file"], "private key")
            try:
                material = parse_private_key(text)
            except ValidationError as exc:
                raise CommandError(_words(exc)) from None
            secrets["private_key"] = material.pem
            key_id_from_file = material.key_id
        if options["client_secret_file"]:
            secrets["client_secret"] = _read(options["client_secret_file"], "client secret").strip()
            if not secrets["client_secret"]:
                raise CommandError("The client secret file is empty.")
        if options["webhook_secret_file"]:
            secrets["webhook_secret"] = _read(
                options["webhook_secret_file"], "webhook secret"
            ).strip()

        if options["service_account_key_id"]:
            mode = Credential.AuthMode.SERVICE_ACCOUNT
            if "private_key" not in secrets:
                raise CommandError("--service-account-key-id needs --private-key-file.")
        elif "private_key" in secrets:
            mode = Credential.AuthMode.PRIVATE_KEY
            if options["client_secret_file"]:
                raise CommandError(
                    "Give either --client-secret-file or --private-key-file, not both "
                    "(a client secret goes with a service account key only)."
                )
        elif "client_secret" in secrets:
            mode = Credential.AuthMode.CLIENT_SECRET
        else:
            raise CommandError(
                "Say how to sign in: --client-secret-file, or --private-key-file, or "
                "--service-account-key-id with --private-key-file."
            )
        try:
            credential = credential_create(
                organization=organization,
                name=options["name"],
                environment=options["environment"],
                auth_mode=mode,
                client_id=options["client_id"],
                private_key_id=options["private_key_id"] or key_id_from_file,
                service_account_key_id=options["service_account_key_id"],
                app_id=options["app_id"],
                secrets=secrets,
            )
        except ValidationError as exc:
            raise CommandError(_words(exc)) from None

        self.stdout.write(
            self.style.SUCCESS(
                f"Credential {credential.name!r} added to {organization.name} "
                f"({credential.get_environment_display()}, {credential.get_auth_mode_display()})."
            )
        )
        self.stdout.write(
            f"  Webhook URL (set it in the HM console): {webhook_url_for(credential)}"
        )
        if not credential.webhook_secret:
            self.stdout.write(
                "  No webhook secret given: webhooks cannot be verified until you set one."
            )
        self.stdout.write(
            f"  Check it: python manage.py hm_check --org {organization.slug} "
            f"--credential {credential.name!r}"
        )
