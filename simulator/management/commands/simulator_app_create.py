"""Create a simulated HM application and print its credentials (shown once)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from simulator import services


class Command(BaseCommand):
    help = (
        "Create a simulated HM application (OAuth client, private key, service-account key, "
        "optional webhook) and print its credentials. Secrets are not stored in clear: copy them now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--webhook-url", default=None)
        parser.add_argument("--webhook-secret", default=None)
        parser.add_argument(
            "--private-key-out",
            default=None,
            help="Write the private key JSON file, as the HM console downloads it.",
        )
        parser.add_argument(
            "--approval-delay",
            type=int,
            default=None,
            help="Seconds until ordinary VINs are approved (default: SIMULATOR_APPROVAL_DELAY_SECONDS).",
        )

    def handle(self, *args, **options):
        out_path = Path(options["private_key_out"]) if options["private_key_out"] else None
        if out_path is not None and out_path.exists():
            raise CommandError(f"{out_path} already exists; not overwriting a key file.")
        app, secrets = services.create_app(
            options["name"],
            webhook_url=options["webhook_url"],
            webhook_secret=options["webhook_secret"],
            approval_delay_seconds=options["approval_delay"],
        )
        lines = [
            f"Simulated HM application {app.name!r} created.",
            f"  application id:          {secrets.app_id}",
            f"  OAuth client id:         {secrets.client_id}",
            f"  OAuth client secret:     {secrets.client_secret}",
            f"  private key id:          {secrets.private_key_id}",
            f"  service account key id:  {secrets.service_account_key_id}",
        ]
        if app.webhook_url:
            lines += [
                f"  webhook URL:             {app.webhook_url}",
                f"  webhook secret:          {secrets.webhook_secret}",
            ]
        self.stdout.write("\n".join(lines))
        if out_path is not None:
            out_path.write_text(secrets.console_key_json() + "\n")
            out_path.chmod(0o600)
            self.stdout.write(f"  private key JSON written to {out_path}")
        else:
            self.stdout.write(
                "\nPrivate key (PEM, for the private-key auth mode):\n" + secrets.private_key_pem
            )
        self.stdout.write(
            "Service-account private key (PEM, legacy auth mode):\n"
            + secrets.service_account_private_key_pem
        )
