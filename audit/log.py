"""Recording audit entries: ``record`` for one object, ``record_many`` for a bulk action (one
insert for all its objects, never a query per row). Details never hold secrets: values under a
key that names one are dropped, whatever the caller passed."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from audit.context import Actor, current
from audit.models import AuditEntry

_SECRET_KEY = re.compile(r"secret|password|private_key|token|mqtt_client_key|hash", re.I)
BATCH = 1000


@dataclass(frozen=True)
class Target:
    object_type: str
    object_id: Any = ""
    label: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


def scrub(details: Mapping[str, Any]) -> dict[str, Any]:
    """A copy without any value whose key names a secret (lists of field names stay)."""
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if _SECRET_KEY.search(str(key)) and key not in ("fields", "changed_fields"):
            continue
        clean[str(key)] = scrub(value) if isinstance(value, Mapping) else value
    return clean


def _entry(
    action: str, organization_id: int | None, target: Target, actor: Actor, now: Any
) -> AuditEntry:
    return AuditEntry(
        at=now,
        organization_id=organization_id,
        user_id=actor.user_id,
        token_id=actor.token_id,
        actor=actor.label[:200],
        action=action,
        object_type=target.object_type,
        object_id=str(target.object_id or "")[:64],
        object_label=str(target.label or "")[:200],
        details=scrub(target.details),
        ip=actor.ip,
    )


def record(
    action: str,
    *,
    organization: Any = None,
    organization_id: int | None = None,
    target: Target | None = None,
    actor: Actor | None = None,
) -> None:
    record_many(
        action,
        [target or Target("")],
        organization=organization,
        organization_id=organization_id,
        actor=actor,
    )


def record_many(
    action: str,
    targets: Iterable[Target],
    *,
    organization: Any = None,
    organization_id: int | None = None,
    actor: Actor | None = None,
) -> int:
    actor = actor or current()
    org_id = organization_id if organization_id is not None else getattr(organization, "pk", None)
    now = timezone.now()
    entries = [_entry(action, org_id, target, actor, now) for target in targets]
    AuditEntry.objects.bulk_create(entries, batch_size=BATCH)
    return len(entries)


def purge(days: int) -> int:
    """Delete entries older than ``days`` (AUDIT_RETENTION_DAYS)."""
    deleted, _ = AuditEntry.objects.filter(at__lt=timezone.now() - timedelta(days=days)).delete()
    return deleted
