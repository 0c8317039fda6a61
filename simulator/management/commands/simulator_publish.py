"""Publish the simulator's vehicle data to the local MQTT broker, like HM's MQTT v2 stream.

python manage.py simulator_publish                 # every approved simulated clearance, forever
python manage.py simulator_publish --once
python manage.py simulator_publish --vin 2HM00000000000004 --app-id <uuid> --once
"""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from simulator import clock
from simulator.behaviour import status_at
from simulator.models import SimClearance
from simulator.publisher import Publisher, Target


def approved_targets() -> list[Target]:
    """Every simulated clearance that is approved at the simulator's "now"."""
    now = clock.now()
    targets = []
    for row in SimClearance.objects.select_related("app").order_by("app_id", "vin"):
        if status_at(row.facts(), now).status == "approved":
            targets.append(Target(str(row.app.app_id), row.vin, row.brand or "sandbox"))
    return targets


class Command(BaseCommand):
    help = "Publish simulated vehicle data (HM MQTT v2 envelopes) to SIMULATOR_MQTT_URL."

    def add_arguments(self, parser):
        parser.add_argument("--url", default=None, help="Broker URL (default SIMULATOR_MQTT_URL).")
        parser.add_argument("--once", action="store_true", help="Publish one round and exit.")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="Seconds between rounds (default SIMULATOR_MQTT_PUBLISH_INTERVAL_SECONDS).",
        )
        parser.add_argument("--vin", action="append", default=[], help="Publish only this VIN.")
        parser.add_argument("--app-id", default="", help="Application id for --vin targets.")

    def handle(self, *args, **options):
        url = options["url"] or settings.SIMULATOR_MQTT_URL
        interval = options["interval"] or settings.SIMULATOR_MQTT_PUBLISH_INTERVAL_SECONDS
        if options["vin"] and not options["app_id"]:
            raise CommandError("--vin needs --app-id (the application the stream belongs to).")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write(f"Publishing simulated vehicle data to {url} every {interval:g} s")
        while not stop.is_set():
            try:
                self._publish_rounds(url, interval, options, stop)
            except (OSError, ConnectionError) as exc:
                if options["once"]:
                    raise CommandError(
                        f"Cannot publish to the MQTT broker at {url}: {exc}"
                    ) from exc
                # A long-running publisher outlives broker restarts.
                self.stderr.write(f"MQTT broker at {url} unavailable ({exc}); retrying in 10 s")
                stop.wait(min(10, interval))
            except DatabaseError as exc:
                if options["once"]:
                    raise CommandError(f"The database is unavailable: {exc}") from exc
                # ... and database restarts: a fresh connection on the next round.
                self.stderr.write(f"Database unavailable ({exc}); retrying in 10 s")
                connection.close()
                stop.wait(min(10, interval))

    def _publish_rounds(self, url, interval, options, stop):
        with Publisher(url) as publisher:
            while not stop.is_set():
                targets = (
                    [Target(options["app_id"], vin) for vin in options["vin"]]
                    if options["vin"]
                    else approved_targets()
                )
                sent = publisher.publish(targets, clock.now())
                self.stdout.write(f"Published {sent} vehicle message(s)")
                if options["once"]:
                    stop.set()
                    break
                stop.wait(interval)
