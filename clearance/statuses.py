"""The clearance statuses and every rule about them, in one place.

Which statuses are still moving (in flight) and which are final, which can be defleeted or
re-onboarded, when HM will refuse to withdraw a pending request (the carmaker cancel rule), and
the words a fleet manager reads for each status: its label, what it means, what to do next.
Views, selectors, services, telemetry and templates ask this module (or the ``Clearance``
properties built on it: ``is_final``, ``can_defleet``, ``can_reonboard``); none keeps a set of
its own. The moves between statuses are ``clearance.state``'s business.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from clearance.hm import CANCELLATION_BRANDS
from vehicles.brands import BRAND_LABELS


class ClearanceStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    REVOKING = "revoking", "Revoking"
    REVOKED = "revoked", "Revoked"
    CANCELING = "canceling", "Canceling"
    CANCELED = "canceled", "Canceled"
    ERROR = "error", "Error"


S = ClearanceStatus
KNOWN: frozenset[str] = frozenset(s.value for s in S)
# A vehicle without a clearance row (e.g. imported but never sent).
NOT_REQUESTED = "none"

# --- the sets ------------------------------------------------------------------------------------

# Still moving without a new action from us: pages keep watching these.
IN_FLIGHT: frozenset[str] = frozenset({S.QUEUED, S.PENDING, S.REVOKING, S.CANCELING})
# No change without a new action from us (polling can stop).
FINAL: frozenset[str] = frozenset({S.APPROVED, S.REJECTED, S.REVOKED, S.CANCELED, S.ERROR})
# A defleet (HM DELETE) makes sense: revoke an approval, withdraw a pending request.
DEFLEETABLE: frozenset[str] = frozenset({S.APPROVED, S.PENDING})
# A new request may be sent (re-onboard).
REONBOARDABLE: frozenset[str] = frozenset({S.REJECTED, S.REVOKED, S.CANCELED, S.ERROR})
# HM shares the vehicle's data.
DATA_FLOWS: frozenset[str] = frozenset({S.APPROVED})

IN_FLIGHT = frozenset(str(s) for s in IN_FLIGHT)
FINAL = frozenset(str(s) for s in FINAL)
DEFLEETABLE = frozenset(str(s) for s in DEFLEETABLE)
REONBOARDABLE = frozenset(str(s) for s in REONBOARDABLE)
DATA_FLOWS = frozenset(str(s) for s in DATA_FLOWS)


def is_final(status: str | None) -> bool:
    """True when nothing changes without a new action from us. A vehicle without clearance is
    final, and so is a status HM invents tomorrow (only the next sync can tell more)."""
    return status is None or status not in IN_FLIGHT


def is_in_flight(status: str | None) -> bool:
    return status in IN_FLIGHT


def can_defleet(status: str | None) -> bool:
    return status in DEFLEETABLE


def can_reonboard(status: str | None) -> bool:
    """Clearance can be requested (again): never requested, or ended without data access."""
    return status is None or status in REONBOARDABLE


def data_flows(status: str | None) -> bool:
    return status in DATA_FLOWS


# --- the words -----------------------------------------------------------------------------------

# Shown in this order in the counters and the status filter.
ORDER: tuple[str, ...] = tuple(s.value for s in S)
# Counters the fleet page always shows (the others only when they have vehicles).
ALWAYS_COUNTED: tuple[str, ...] = (S.PENDING.value, S.APPROVED.value, S.REJECTED.value)
LABELS: dict[str, str] = {
    **{value: label for value, label in S.choices},
    NOT_REQUESTED: "Not requested",
}


def label(status: str | None) -> str:
    """ "Approved", "Not requested"; a status we do not know is shown as it came."""
    return LABELS.get(status or NOT_REQUESTED, status or "")


# What the status means and what to do next (vehicle page).
HELP: dict[str, tuple[str, str]] = {
    S.QUEUED: (
        "Saved in FleetPortal and about to be sent to High Mobility.",
        "Nothing to do: it is sent within a few seconds. If it stays queued for minutes, check "
        "that the background worker is running.",
    ),
    S.PENDING: (
        "High Mobility has the request and is waiting for the carmaker to approve it.",
        "Wait. Some carmakers take days (the owner may have to confirm in the brand's app); "
        "pending for a few days is normal.",
    ),
    S.APPROVED: (
        "The carmaker approved data access: telemetry can be read for this vehicle.",
        "Nothing to do. Defleet it when it leaves your fleet.",
    ),
    S.REJECTED: (
        "The carmaker refused data access.",
        "Check the reason below, the owner's consent and the odometer (control measure), "
        "then re-onboard the vehicle.",
    ),
    S.REVOKING: (
        "Data access is being removed at High Mobility.",
        "Nothing to do: it becomes revoked on its own.",
    ),
    S.REVOKED: (
        "Data access was removed; no more telemetry arrives for this vehicle.",
        "Re-onboard it if it comes back into your fleet.",
    ),
    S.CANCELING: (
        "The pending request is being withdrawn at High Mobility.",
        "Nothing to do: it becomes canceled on its own.",
    ),
    S.CANCELED: (
        "The request was withdrawn before the carmaker answered.",
        "Re-onboard it if you still want data from this vehicle.",
    ),
    S.ERROR: (
        "Sending the request failed for good.",
        "Read the error below (often the VIN or brand is wrong, or the credential lacks "
        "permissions), fix it, then re-onboard.",
    ),
    NOT_REQUESTED: (
        "No clearance has been requested for this vehicle yet.",
        "Request clearance to start receiving data.",
    ),
}
HELP = {str(k): v for k, v in HELP.items()}

# Queued, and the last attempt to send it failed (HM unreachable, refused the application...).
QUEUED_RETRYING_HELP = (
    "Saved in FleetPortal; sending it to High Mobility has not worked yet.",
    "Nothing to do for now: FleetPortal tries again by itself (the worker retries with growing "
    "pauses, then the periodic sync sends it again). If the problem below names the credential, "
    "an owner has to fix it on the Credentials page first.",
)


def status_help(status: str | None, *, last_error: str = "") -> tuple[str, str]:
    """(what the status means, what to do) in plain words."""
    if status == S.QUEUED and last_error:
        return QUEUED_RETRYING_HELP
    return HELP.get(
        status or NOT_REQUESTED,
        (
            f"High Mobility reported a status FleetPortal does not know (“{status}”).",
            "Nothing to do now; the next sync with High Mobility will update it.",
        ),
    )


# The outcome of an action, one sentence per status (toasts after a defleet).
OUTCOME_WORDS: dict[str, str] = {
    S.QUEUED: "Waiting to be sent to High Mobility.",
    S.PENDING: "Sent; waiting for the carmaker to approve the data access.",
    S.APPROVED: "Approved: the vehicle's data can be read.",
    S.REJECTED: "Rejected by the carmaker.",
    S.REVOKING: "Defleet requested; High Mobility is revoking the access.",
    S.REVOKED: "Revoked: no more data access.",
    S.CANCELING: "Defleet requested; High Mobility is canceling the pending request.",
    S.CANCELED: "Canceled before approval.",
    S.ERROR: "High Mobility refused the request.",
}
OUTCOME_WORDS = {str(k): v for k, v in OUTCOME_WORDS.items()}

# Why a defleet does nothing, per status that cannot be defleeted.
NOT_DEFLEETABLE_WORDS: dict[str, str] = {
    S.QUEUED: "The request has not been sent to High Mobility yet; there is nothing to defleet.",
    S.REVOKING: "The defleet is already under way (revoking).",
    S.CANCELING: "The defleet is already under way (canceling).",
    S.REVOKED: "This vehicle is already defleeted (revoked).",
    S.CANCELED: "This vehicle's request was already canceled.",
    S.REJECTED: "The carmaker rejected this vehicle; there is nothing to defleet.",
    S.ERROR: "High Mobility never accepted this vehicle; there is nothing to defleet.",
}
NOT_DEFLEETABLE_WORDS = {str(k): v for k, v in NOT_DEFLEETABLE_WORDS.items()}


def why_no_data(status: str | None, *, has_data: bool = False) -> str:
    """Why no (new) telemetry arrives for a vehicle in this status, in words; "" when it does.
    ``has_data``: something was received earlier (a re-onboarded vehicle), so the words never
    say "No data yet" above it."""
    if status is None:
        return (
            "No data yet: data access has not been requested from High Mobility for this vehicle."
        )
    if status in DATA_FLOWS:
        return ""
    earlier = " What is shown below was received earlier." if has_data else ""
    if status in (S.REVOKING, S.REVOKED):
        being = "has been" if status == S.REVOKED else "is being"
        return (
            f"Data access {being} revoked, so no new data arrives; anything shown below was "
            "received before."
        )
    if status == S.REJECTED:
        return (
            "The carmaker rejected the clearance, so High Mobility shares no data for it." + earlier
        )
    if status in (S.CANCELING, S.CANCELED):
        return f"The clearance request was canceled (it is {status}), so no data arrives." + earlier
    lead = "No new data" if has_data or status not in IN_FLIGHT else "No data yet"
    return f"{lead}: data arrives once the clearance is approved (it is {status} now)." + earlier


# --- the carmaker cancel rule ----------------------------------------------------------------------

# HM withdraws a pending request only for some carmakers, and only a day after it was sent
# (PROTOCOL.md §2.4; clearance.services.defleet words HM's actual refusals).
CANCEL_MIN_AGE = timedelta(days=1)
CANCELLATION_BRAND_NAMES = ", ".join(BRAND_LABELS.get(b, b) for b in CANCELLATION_BRANDS)
CANCEL_REFUSAL_NOTE = (
    "Some carmakers do not let High Mobility withdraw a pending request: it is allowed only "
    f"for {CANCELLATION_BRAND_NAMES}, and only one day after the request was sent. When High "
    "Mobility refuses, nothing changes: the vehicle stays Pending, the reason is shown on its "
    "row and its page, and you can defleet it once it is approved (or the request ends by "
    "itself)."
)


def cancel_refused_q(now: datetime | None = None) -> models.Q:
    """The vehicles (a Vehicle queryset's filter) whose pending request HM will most likely
    refuse to withdraw: the same rule as ``cancel_refusal_expected``, for counting in SQL."""
    now = now or timezone.now()
    return models.Q(clearance__status=S.PENDING) & (
        ~models.Q(brand__in=CANCELLATION_BRANDS)
        | models.Q(clearance__requested_at__gt=now - CANCEL_MIN_AGE)
    )


def cancel_refusal_expected(
    brand: str, requested_at: datetime | None, now: datetime | None = None
) -> str:
    """Why HM will most likely refuse to withdraw this pending request, in words; "" when it
    should not refuse."""
    if brand not in CANCELLATION_BRANDS:
        name = BRAND_LABELS.get(brand, brand)
        return (
            f"{name} is not among the carmakers that allow withdrawing a pending request, so "
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
