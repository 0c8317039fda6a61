"""What each kind of alert rule watches, when it fires and when it clears, in one place.

Every kind is evaluated where its news arrives: a clearance move, a refused defleet, a stored
telemetry snapshot; the two time-based kinds (pending too long, silent) by the periodic
evaluation, one query per rule for the whole fleet. An alert fires once per rule and vehicle and
fires again only after its condition cleared; levels clear a few points above the threshold
(hysteresis), so a battery hovering at the threshold does not fire again and again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from notifications.models import RuleKind

# Where a kind's news comes from.
ON_CLEARANCE = "clearance"
ON_DEFLEET_REFUSAL = "defleet"
ON_TELEMETRY = "telemetry"
PERIODIC = "periodic"

# A level alert clears once the level is this many percentage points above the threshold.
HYSTERESIS_POINTS = 5.0


@dataclass(frozen=True)
class Condition:
    kind: str
    watches: str  # what fires it, for the rule form and the docs
    clears: str  # when it may fire again
    trigger: str
    unit: str = ""  # "days", "hours" or "%" when the rule has a threshold
    default: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    # Clearance statuses in which an open alert stays open; any other status clears it. None:
    # clearance moves do not clear it. An empty set: any move clears it.
    holds_in: frozenset[str] | None = None

    @property
    def label(self) -> str:
        return RuleKind(self.kind).label

    @property
    def has_threshold(self) -> bool:
        return bool(self.unit)


CONDITIONS: dict[str, Condition] = {
    c.kind: c
    for c in (
        Condition(
            RuleKind.CLEARANCE_REJECTED,
            "The carmaker rejects a vehicle's clearance.",
            "once the vehicle is requested again",
            ON_CLEARANCE,
            holds_in=frozenset({"rejected"}),
        ),
        Condition(
            RuleKind.CLEARANCE_REVOKED,
            "The carmaker (or the vehicle's owner) ends an approved data access, without a "
            "defleet from FleetPortal.",
            "once the vehicle is requested again",
            ON_CLEARANCE,
            holds_in=frozenset({"revoked"}),
        ),
        Condition(
            RuleKind.CLEARANCE_ERROR,
            "High Mobility refuses a clearance request for good (status Error).",
            "once the vehicle is requested again",
            ON_CLEARANCE,
            holds_in=frozenset({"error"}),
        ),
        Condition(
            RuleKind.DEFLEET_REFUSED,
            "High Mobility refuses to revoke or cancel a vehicle's clearance.",
            "once the clearance changes",
            ON_DEFLEET_REFUSAL,
            holds_in=frozenset(),
        ),
        Condition(
            RuleKind.PENDING_TOO_LONG,
            "A clearance stays pending longer than the number of days set (Ford and Stellantis "
            "reject after 10).",
            "once the clearance is no longer pending",
            PERIODIC,
            unit="days",
            default=10,
            minimum=1,
            maximum=365,
            holds_in=frozenset({"pending"}),
        ),
        Condition(
            RuleKind.SILENT,
            "An approved vehicle sends no telemetry for the number of hours set.",
            "once the vehicle reports again",
            PERIODIC,
            unit="hours",
            default=24,
            minimum=1,
            maximum=24 * 60,
            holds_in=frozenset({"approved"}),
        ),
        Condition(
            RuleKind.BATTERY_LOW,
            "A vehicle reports a battery level below the percentage set.",
            f"once the battery is back {HYSTERESIS_POINTS:g} points above the threshold",
            ON_TELEMETRY,
            unit="%",
            default=20,
            minimum=1,
            maximum=99,
        ),
        Condition(
            RuleKind.FUEL_LOW,
            "A vehicle reports a fuel level below the percentage set.",
            f"once the tank is back {HYSTERESIS_POINTS:g} points above the threshold",
            ON_TELEMETRY,
            unit="%",
            default=20,
            minimum=1,
            maximum=99,
        ),
        Condition(
            RuleKind.FIELD_FAILURE,
            "A vehicle reports a failure for the telemetry field chosen (the carmaker could not "
            "read it).",
            "once the field is reported again without a failure",
            ON_TELEMETRY,
        ),
    )
}


def condition(kind: str) -> Condition:
    return CONDITIONS[kind]


def kinds(trigger: str) -> list[str]:
    return [kind for kind, c in CONDITIONS.items() if c.trigger == trigger]


def cleared_by_status(kind: str, status: str) -> bool:
    """Whether a clearance now in ``status`` clears an open alert of ``kind``."""
    holds_in = CONDITIONS[kind].holds_in
    return holds_in is not None and status not in holds_in


def summary(kind: str, threshold: float | None, field_label: str = "") -> str:
    """ "Battery low: below 20 %", "Pending too long: over 10 days", in a rule list."""
    cond = CONDITIONS[kind]
    if cond.unit == "%" and threshold is not None:
        return f"{cond.label}: below {threshold:g} %"
    if cond.unit and threshold is not None:
        return f"{cond.label}: over {threshold:g} {cond.unit}"
    if field_label:
        return f"{cond.label}: {field_label}"
    return cond.label


# --- words --------------------------------------------------------------------------------------


def percent(level: float) -> str:
    return f"{level * 100:.0f} %"


def clears_at(threshold: float) -> float:
    """The level (percent) at which a low-level alert clears: a few points above the threshold,
    and never above a full tank."""
    return min(threshold + HYSTERESIS_POINTS, 100.0)


def level_words(what: str, level: float, threshold: float) -> tuple[str, str]:
    return (
        f"{what} at {percent(level)}",
        f"Below the rule's {threshold:g} %; the alert clears at {clears_at(threshold):g} %.",
    )


def level_is_low(level: float, threshold: float) -> bool:
    return level * 100 < threshold


def level_has_recovered(level: float, threshold: float) -> bool:
    return level * 100 >= clears_at(threshold)


def clearance_words(kind: str, reason: str) -> tuple[str, str]:
    if kind == RuleKind.CLEARANCE_REJECTED:
        return "Clearance rejected", reason or "The carmaker rejected the data access."
    if kind == RuleKind.CLEARANCE_REVOKED:
        return (
            "Clearance revoked by the carmaker",
            reason or "The carmaker (or the vehicle's owner) ended the data access.",
        )
    return "Clearance request refused", reason or "High Mobility refused the request."


def pending_words(since: datetime, now: datetime, days: float) -> tuple[str, str]:
    waited = max(int((now - since) / timedelta(days=1)), int(days))
    return (
        f"Pending for {waited} days",
        f"Requested on {since:%d %b %Y}; still waiting for the carmaker. Some carmakers "
        "reject after 10 days: check the owner's consent in the brand's app.",
    )


def silent_words(since: datetime | None, now: datetime, hours: float) -> tuple[str, str]:
    if since is None:
        return (
            f"No telemetry for {hours:g} hours",
            "Approved, but no data has arrived since; check that the vehicle is in use and "
            "connected.",
        )
    silent = max(int((now - since) / timedelta(hours=1)), int(hours))
    return (
        f"Silent for {silent} hours",
        f"Last telemetry on {since:%d %b %Y %H:%M} UTC; check that the vehicle is in use and "
        "connected.",
    )
