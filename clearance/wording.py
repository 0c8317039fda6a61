"""How the fleet pages word an HM application (its environment said once) and when HM last
told us something. The words of each status live with the status rules in
``clearance.statuses``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from clearance.models import ClearanceStatus, Credential

# What is said after an HM application's name: (word in the name, note when the name already
# contains that word, note otherwise). A credential called "Simulator" is "Simulator (offline
# stand-in)", not "Simulator (Simulator (offline stand-in))".
ENVIRONMENT_NOTES: dict[str, tuple[str, str, str]] = {
    Credential.Environment.PRODUCTION: ("production", "", "Production"),
    Credential.Environment.SANDBOX: ("sandbox", "", "Sandbox"),
    Credential.Environment.SIMULATOR: (
        "simulator",
        "offline stand-in",
        "Simulator, offline stand-in",
    ),
}


def credential_label(name: str, environment: str) -> str:
    """ "Main app (Production)", "Simulator (offline stand-in)", "Sandbox": the environment is
    said once, also when the application's name already says it."""
    word, named_note, note = ENVIRONMENT_NOTES.get(environment, ("", "", environment))
    if word and word in name.lower():
        note = named_note
    return f"{name} ({note})" if note else name


def last_heard_from_hm(clearance: Any) -> datetime | None:
    """When High Mobility last told us something new about this clearance: a sync that changed
    it, a webhook, or its answer to our request or defleet (our clock). None while it has not.

    ``status_known_at`` is when we learnt the current status; for ``queued`` that is our own
    doing (saved, not sent), so it does not count.
    """
    if clearance is None:
        return None
    times = [clearance.last_synced_at, clearance.requested_at]
    if clearance.status != ClearanceStatus.QUEUED:
        times.append(clearance.status_known_at)
    return max((at for at in times if at is not None), default=None)
