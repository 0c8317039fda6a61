from datetime import timedelta

from django.utils import timezone

from telemetry.models import TelemetryPull


def record_pull(vehicle, state: str, message: str = "", *, requested: bool = False) -> None:
    """Write a vehicle's pull row as a pull that ended in ``state`` ("ok", "failed",
    "retrying") would, or as a scheduled pull under way ("running")."""
    now = timezone.now()
    if state == "running":
        fields = {"state": "running", "next_attempt_at": now + timedelta(minutes=1)}
    else:
        fields = {
            "outcome": state,
            "outcome_message": message,
            "outcome_at": now,
            "outcome_requested": requested,
            "next_attempt_at": now + timedelta(minutes=5),
        }
    TelemetryPull.objects.update_or_create(vehicle=vehicle, defaults=fields)
