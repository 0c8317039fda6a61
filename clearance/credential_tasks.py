"""Background work for the credential pages (the lifecycle tasks live in clearance/tasks.py)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.exceptions import ImproperlyConfigured

from clearance.connect import check_connection
from clearance.credential_services import record_check
from clearance.models import Credential

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name="clearance.credential_tasks.test_connection",
    queue="hm",
    soft_time_limit=90,
    time_limit=120,
    acks_late=True,
)
def test_connection(self, credential_id: int) -> None:
    """Get a fresh token and list the fleet; store the outcome, in words, on the credential."""
    try:
        credential = Credential.objects.filter(pk=credential_id).first()
    except ImproperlyConfigured as exc:  # a secret that no configured key can decrypt
        Credential.objects.filter(pk=credential_id).update(
            last_check_ok=False, last_check_message=str(exc)
        )
        return
    if credential is None:
        return
    result = check_connection(credential)
    logger.info(
        "Connection test for credential %s: %s (%s)", credential.public_id, result.kind, result.ok
    )
    record_check(credential, ok=result.ok, message=result.message)


test_connection.__test__ = False  # not a pytest test, despite its name
