"""Consume HM's MQTT v2 stream for one credential and store every message as a snapshot.

    python manage.py stream_consume --org acme --credential "HM production"
    python manage.py stream_consume --org demo-fleet --wait     # the org's only credential

Production/sandbox credentials connect to HM_MQTT_HOST:HM_MQTT_PORT with TLS and the
credential's client certificate; simulator credentials connect to SIMULATOR_MQTT_URL (plain TCP).
Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from clearance.management.lookup import credential_for, organization_for
from clearance.models import Credential
from telemetry.stream import StreamSetupError, consumer_for

WAIT_SECONDS = 10


def find_credential(org: str, name: str | None) -> Credential:
    credential = credential_for(organization_for(org), name, required=True)
    assert credential is not None  # required: an error otherwise
    return credential


class Command(BaseCommand):
    help = "Consume the HM MQTT v2 stream of one credential into telemetry snapshots."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument(
            "--credential", default=None, help="Credential name (default: the org's only one)."
        )
        parser.add_argument(
            "--client-id",
            default=None,
            help="MQTT client id (HM: the certificate id from the console). "
            "Default: fleetportal-<credential id>.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help=f"Until the credential exists, check again every {WAIT_SECONDS} s instead of "
            "failing (for process managers that start everything at once).",
        )

    def handle(self, *args, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        while True:
            try:
                credential = find_credential(options["org"], options["credential"])
                consumer = consumer_for(credential, options["client_id"])
                break
            except (CommandError, StreamSetupError) as exc:
                if not options["wait"]:
                    raise CommandError(str(exc)) from exc
                self.stderr.write(f"{exc} Checking again in {WAIT_SECONDS} s.")
                if stop.wait(WAIT_SECONDS):
                    return
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        signal.signal(signal.SIGINT, lambda *_: consumer.stop())
        if stop.is_set():
            return
        config = consumer.config
        self.stdout.write(
            f"Consuming {config.topic} on {config.host}:{config.port} for "
            f"{credential.organization.slug}/{credential.name} (TLS: {bool(config.tls)})",
        )
        self.stdout.flush()
        consumer.run()
        self.stdout.write(f"Stopped cleanly: {consumer.stats}")
