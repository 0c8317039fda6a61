from functools import partial

from django.apps import AppConfig

from vehicles import events


class NotificationsConfig(AppConfig):
    """Alerts, the notification centre, emails and outgoing webhooks.

    ``ready`` subscribes the listeners to the fleet events that clearance, telemetry and imports
    publish (vehicles/events.py): those apps sit below this one and never import it; and plugs
    the deliveries into the reconciler (durable/__init__.py).
    """

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        # Models are ready only now, so this app's own modules are imported here.
        from durable import work
        from notifications import checks, evaluation, tasks  # noqa: F401  (checks register)
        from notifications.models import EventDelivery, OutgoingEmail

        events.subscribe(events.ClearanceChanged, evaluation.on_clearance_changed)
        events.subscribe(events.DefleetRefused, evaluation.on_defleet_refused)
        events.subscribe(events.TelemetryRecorded, evaluation.on_telemetry_recorded)
        events.subscribe(events.ImportFinished, evaluation.on_import_finished)

        # The reconciler wakes a sender per endpoint with webhooks due, and per organization
        # with emails due (the querysets are only templates: each round filters a fresh copy).
        work.register(
            "notifications.webhooks",
            due=partial(work.due_keys, EventDelivery.objects.all(), "endpoint_id"),
            wake=tasks.send_webhooks.delay,
        )
        work.register(
            "notifications.emails",
            due=partial(work.due_keys, OutgoingEmail.objects.all(), "organization_id"),
            wake=tasks.send_emails.delay,
        )
