"""The credentials webhooks arrive for, remembered by each web process for a few seconds.

A burst of webhooks for one credential would otherwise read (and decrypt) the same row once per
request: about a third of the receiver's time. Only known credentials are remembered (an unknown
address is looked up every time, as before), for ``REMEMBER_SECONDS``; this process forgets a
credential the moment it is saved or deleted (``forget``, connected in ``apps.py``), other
processes within ``REMEMBER_SECONDS``. Meanwhile nothing is weakened: a signature that does not
match the remembered secret is checked again against the database (a secret replaced elsewhere
is accepted at once, the old one refused from then on), and a delivery for a credential deleted
elsewhere fails its foreign key and is answered 404 (``clearance/webhooks.py``). The secret
stays in this process's memory: never in the shared cache, never in a log or a ``repr``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from clearance.models import Credential

REMEMBER_SECONDS = 5.0


@dataclass(frozen=True)
class WebhookCredential:
    pk: int
    public_id: UUID
    webhook_secret: str = field(repr=False)
    remembered: bool = False  # from this process's memory, not read just now


# public_id -> (credential, monotonic time it is forgotten). Plain dict operations are atomic
# under the GIL, so the threads of one process share it without a lock.
_known: dict[UUID, tuple[WebhookCredential, float]] = {}


def lookup(public_id: UUID, *, fresh: bool = False) -> WebhookCredential | None:
    """The credential with this webhook address (None: none), from memory unless ``fresh``."""
    now = time.monotonic()
    if not fresh:
        known = _known.get(public_id)
        if known is not None and known[1] > now:
            return known[0]
    row = (
        Credential.objects.filter(public_id=public_id)
        .only("id", "public_id", "webhook_secret")
        .first()
    )
    if row is None:
        _known.pop(public_id, None)
        return None
    credential = WebhookCredential(row.pk, row.public_id, row.webhook_secret)
    _known[public_id] = (
        WebhookCredential(row.pk, row.public_id, row.webhook_secret, remembered=True),
        now + REMEMBER_SECONDS,
    )
    return credential


def forget(sender: Any = None, instance: Credential | None = None, **kwargs: Any) -> None:
    """Drop one credential (a ``post_save``/``post_delete`` receiver), or all without one."""
    if instance is None:
        _known.clear()
    else:
        _known.pop(instance.public_id, None)


def forget_address(public_id: UUID) -> None:
    """Drop the credential of this webhook address (found deleted meanwhile)."""
    _known.pop(public_id, None)
