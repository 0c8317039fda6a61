"""Show, advance or reset the simulator's clock (shared by web and worker processes)."""

import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from simulator import clock, services

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if not match:
        raise CommandError(f"{text!r} is not a duration like 30s, 10m, 3h or 2d.")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


class Command(BaseCommand):
    help = (
        "Show the simulator's time, move it forward (--advance 3h) or back to real time (--reset)."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--advance", help="A duration such as 30s, 10m, 3h, 2d.")
        group.add_argument("--reset", action="store_true")

    def handle(self, *args, **options):
        if options["reset"]:
            clock.reset()
        elif options["advance"]:
            services.travel(parse_duration(options["advance"]))
        self.stdout.write(
            f"Simulator time: {clock.now().isoformat(timespec='seconds')} "
            f"(offset {clock.offset().total_seconds():+.0f} s from real time)"
        )
