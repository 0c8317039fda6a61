"""How the fleet pages word a clearance: status labels and what each status means, the HM
application's environment said once, and why HM will most likely refuse to cancel a request."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from clearance import state
from clearance.hm import CANCELLATION_BRANDS
from clearance.models import ClearanceStatus, Credential
from vehicles.brands import BRAND_LABELS

# Shown in this order in the counters and the status filter.
STATUS_ORDER: tuple[str, ...] = (
    ClearanceStatus.QUEUED,
    ClearanceStatus.PENDING,
    ClearanceStatus.APPROVED,
    ClearanceStatus.REJECTED,
    ClearanceStatus.REVOKING,
    ClearanceStatus.REVOKED,
    ClearanceStatus.CANCELING,
    ClearanceStatus.CANCELED,
    ClearanceStatus.ERROR,
)
# A vehicle without a clearance row (e.g. imported but never sent).
NOT_REQUESTED = "none"
STATUS_LABELS: dict[str, str] = {
    **{value: label for value, label in ClearanceStatus.choices},
    NOT_REQUESTED: "Not requested",
}


def is_terminal(status: str | None) -> bool:
    """True when polling can stop; a vehicle without clearance is terminal too."""
    return status is None or status in state.TERMINAL or status not in STATUS_LABELS


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


# Plain-words explanation and next step for each status (vehicle detail page).
STATUS_HELP: dict[str, tuple[str, str]] = {
    ClearanceStatus.QUEUED: (
        "Saved in FleetPortal and about to be sent to High Mobility.",
        "Nothing to do: it is sent within a few seconds. If it stays queued for minutes, check "
        "that the background worker is running.",
    ),
    ClearanceStatus.PENDING: (
        "High Mobility has the request and is waiting for the carmaker to approve it.",
        "Wait. Some carmakers take days (the owner may have to confirm in the brand's app); "
        "pending for a few days is normal.",
    ),
    ClearanceStatus.APPROVED: (
        "The carmaker approved data access: telemetry can be read for this vehicle.",
        "Nothing to do. Defleet it when it leaves your fleet.",
    ),
    ClearanceStatus.REJECTED: (
        "The carmaker refused data access.",
        "Check the reason below, the owner's consent and the odometer (control measure), "
        "then re-onboard the vehicle.",
    ),
    ClearanceStatus.REVOKING: (
        "Data access is being removed at High Mobility.",
        "Nothing to do: it becomes revoked on its own.",
    ),
    ClearanceStatus.REVOKED: (
        "Data access was removed; no more telemetry arrives for this vehicle.",
        "Re-onboard it if it comes back into your fleet.",
    ),
    ClearanceStatus.CANCELING: (
        "The pending request is being withdrawn at High Mobility.",
        "Nothing to do: it becomes canceled on its own.",
    ),
    ClearanceStatus.CANCELED: (
        "The request was withdrawn before the carmaker answered.",
        "Re-onboard it if you still want data from this vehicle.",
    ),
    ClearanceStatus.ERROR: (
        "Sending the request failed for good.",
        "Read the error below (often the VIN or brand is wrong, or the credential lacks "
        "permissions), fix it, then re-onboard.",
    ),
    NOT_REQUESTED: (
        "No clearance has been requested for this vehicle yet.",
        "Request clearance to start receiving data.",
    ),
}


# Queued, and the last attempt to send it failed (HM unreachable, refused the application...).
QUEUED_RETRYING_HELP = (
    "Saved in FleetPortal; sending it to High Mobility has not worked yet.",
    "Nothing to do for now: FleetPortal tries again by itself (the worker retries with growing "
    "pauses, then the periodic sync sends it again). If the problem below names the credential, "
    "an owner has to fix it on the Credentials page first.",
)


def status_help(status: str | None, *, last_error: str = "") -> tuple[str, str]:
    """(what the status means, what to do) in plain words."""
    if status == ClearanceStatus.QUEUED and last_error:
        return QUEUED_RETRYING_HELP
    if status is None:
        return STATUS_HELP[NOT_REQUESTED]
    return STATUS_HELP.get(
        status,
        (
            f"High Mobility reported a status FleetPortal does not know (“{status}”).",
            "Nothing to do now; the next sync with High Mobility will update it.",
        ),
    )


# HM withdraws a pending request only for some carmakers, and only a day after it was sent
# (PROTOCOL.md §2.4; clearance.services.defleet.explain_delete_refusal words its refusals).
CANCEL_MIN_AGE = timedelta(days=1)
CANCELLATION_BRAND_NAMES = ", ".join(BRAND_LABELS.get(b, b) for b in CANCELLATION_BRANDS)
CANCEL_REFUSAL_NOTE = (
    "Some carmakers do not let High Mobility withdraw a pending request: it is allowed only "
    f"for {CANCELLATION_BRAND_NAMES}, and only one day after the request was sent. When High "
    "Mobility refuses, nothing changes: the vehicle stays Pending, the reason is shown on its "
    "row and its page, and you can defleet it once it is approved (or the request ends by "
    "itself)."
)


def cancel_refusal_expected(
    brand: str, requested_at: datetime | None, now: datetime | None = None
) -> str:
    """Why HM will most likely refuse to withdraw this pending request, in words; "" when it
    should not refuse."""
    if brand not in CANCELLATION_BRANDS:
        label = BRAND_LABELS.get(brand, brand)
        return (
            f"{label} is not among the carmakers that allow withdrawing a pending request, so "
            "High Mobility will most likely refuse."
        )
    now = now or timezone.now()
    if requested_at is not None and now < requested_at + CANCEL_MIN_AGE:
        ready = timezone.localtime(requested_at + CANCEL_MIN_AGE)
        return (
            "This request was sent less than a day ago, so High Mobility will refuse to "
            f"withdraw it before {ready:%d %b %Y %H:%M}."
        )
    return ""


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
