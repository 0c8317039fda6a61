from django.apps import AppConfig

from vehicles import events


class NotificationsConfig(AppConfig):
    """Alerts, the notification centre, emails and outgoing webhooks.

    ``ready`` subscribes the listeners to the fleet events that clearance, telemetry and imports
    publish (vehicles/events.py): those apps sit below this one and never import it.
    """

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        # Models are ready only now, so this app's own modules are imported here.
        from notifications import checks, evaluation  # noqa: F401  (checks register themselves)

        events.subscribe(events.ClearanceChanged, evaluation.on_clearance_changed)
        events.subscribe(events.DefleetRefused, evaluation.on_defleet_refused)
        events.subscribe(events.TelemetryRecorded, evaluation.on_telemetry_recorded)
        events.subscribe(events.ImportFinished, evaluation.on_import_finished)
