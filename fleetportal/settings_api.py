"""Settings of the integrator API and the audit log (imported by settings.py)."""

from fleetportal.env import env_int

# Requests per API token per minute; 0 turns the limit off.
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600, minimum=0)
# Audit log entries older than this are deleted by the daily purge.
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365, minimum=1)

API_BEAT_SCHEDULE = {
    "purge-audit-log": {"task": "audit.tasks.purge_audit_log", "schedule": 24 * 3600.0},
    "purge-api-idempotency-keys": {
        "task": "api.tasks.purge_idempotency_keys",
        "schedule": 3600.0,
    },
}
