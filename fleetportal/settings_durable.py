"""Settings of durable background work (durable/__init__.py, docs/durability.md).

Imported at the end of settings.py, which merges the routes and beat entries below."""

from fleetportal.env import env_float, env_int

# How often the reconciler wakes whatever durable work is due: a lost, killed or dropped task
# message delays work by at most this long.
RECONCILE_INTERVAL_SECONDS = env_int("RECONCILE_INTERVAL_SECONDS", 30, minimum=1)
# A failed unit of work is tried again after an exponential backoff from the base, capped, with
# jitter; never sooner than the remote side's retry-after. Only permanent errors give up.
DURABLE_RETRY_BASE_SECONDS = env_float("DURABLE_RETRY_BASE_SECONDS", 5.0, minimum=0.01)
DURABLE_RETRY_MAX_SECONDS = env_float("DURABLE_RETRY_MAX_SECONDS", 600.0, minimum=0.01)

# Webhooks are confirmed with HM by one task per credential at most this often (a burst of
# webhooks is one HM list call); confirmed deliveries are deleted after the retention.
WEBHOOK_CONFIRM_DELAY_SECONDS = env_int("WEBHOOK_CONFIRM_DELAY_SECONDS", 1, minimum=1)
WEBHOOK_DELIVERY_RETENTION_DAYS = env_int("WEBHOOK_DELIVERY_RETENTION_DAYS", 30, minimum=1)

# Merged into CELERY_TASK_ROUTES and CELERY_BEAT_SCHEDULE by settings.py.
# Exact task names win over the patterns of settings.py (Celery checks them first).
DURABLE_TASK_ROUTES = {
    "durable.tasks.*": {"queue": "default"},
    "clearance.tasks.confirm_webhooks": {"queue": "webhooks"},
    "clearance.tasks.process_webhook": {"queue": "webhooks"},
    "telemetry.tasks.*": {"queue": "telemetry"},
}
DURABLE_BEAT_SCHEDULE = {
    "reconcile-durable-work": {
        "task": "durable.tasks.reconcile",
        "schedule": float(RECONCILE_INTERVAL_SECONDS),
    },
    # Keeps the pull schedule in step with approvals; the pulls themselves are durable work.
    "pull-telemetry": {
        "task": "telemetry.tasks.pull_approved_vehicles",
        "schedule": float(RECONCILE_INTERVAL_SECONDS),
    },
    "prune-webhook-deliveries": {
        "task": "clearance.tasks.prune_webhook_deliveries",
        "schedule": 3600.0,
    },
}
