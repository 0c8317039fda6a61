from celery import shared_task
from django.conf import settings

from audit import log


@shared_task
def purge_audit_log() -> int:
    """Daily: entries older than AUDIT_RETENTION_DAYS go."""
    return log.purge(settings.AUDIT_RETENTION_DAYS)
