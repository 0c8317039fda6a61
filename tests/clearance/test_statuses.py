"""The clearance status rules live in one module and on the model; nothing else keeps a set."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from clearance import statuses
from clearance.models import Clearance, ClearanceStatus

ROOT = Path(__file__).resolve().parents[2]
APPS = ("clearance", "vehicles", "telemetry", "imports", "notifications", "organizations")


def test_every_known_status_is_either_in_flight_or_final():
    known = {s.value for s in ClearanceStatus}
    assert known == statuses.IN_FLIGHT | statuses.FINAL
    assert not statuses.IN_FLIGHT & statuses.FINAL
    assert known >= statuses.DEFLEETABLE and statuses.REONBOARDABLE <= statuses.FINAL
    assert tuple(s.value for s in ClearanceStatus) == statuses.ORDER


@pytest.mark.parametrize(
    ("status", "final", "defleet", "reonboard"),
    [
        (None, True, False, True),
        ("queued", False, False, False),
        ("pending", False, True, False),
        ("approved", True, True, False),
        ("revoking", False, False, False),
        ("revoked", True, False, True),
        ("canceling", False, False, False),
        ("canceled", True, False, True),
        ("rejected", True, False, True),
        ("error", True, False, True),
        ("on_hold", True, False, False),  # a status HM invents tomorrow: watch no more
    ],
)
def test_rules_and_the_model_agree(status, final, defleet, reonboard):
    assert statuses.is_final(status) is final
    assert statuses.can_defleet(status) is defleet
    assert statuses.can_reonboard(status) is reonboard
    if status is not None:
        clearance = Clearance(status=status)
        assert (clearance.is_final, clearance.can_defleet, clearance.can_reonboard) == (
            final,
            defleet,
            reonboard,
        )
        assert clearance.status_label == statuses.label(status)


def test_words_for_every_status():
    for status in (*statuses.ORDER, None):
        meaning, next_step = statuses.status_help(status)
        assert meaning and next_step
    assert statuses.label(None) == "Not requested"
    assert statuses.label("on_hold") == "on_hold"
    assert statuses.status_help("queued", last_error="HM down") == statuses.QUEUED_RETRYING_HELP


def test_cancel_rule():
    now = timezone.now()
    assert "Tesla" in statuses.cancel_refusal_expected("tesla", now - timedelta(days=3), now)
    assert "less than a day" in statuses.cancel_refusal_expected(
        "volkswagen", now - timedelta(hours=2), now
    )
    assert statuses.cancel_refusal_expected("volkswagen", now - timedelta(days=2), now) == ""


def test_telemetry_words_never_say_no_data_above_data():
    assert statuses.why_no_data("approved") == ""
    assert statuses.why_no_data("pending").startswith("No data yet")
    with_data = statuses.why_no_data("pending", has_data=True)
    assert "No data yet" not in with_data and "received earlier" in with_data


# A literal set of two or more statuses, e.g. {"approved", "pending"} or ("queued", "pending").
STATUS = (
    r"""["'](?:queued|pending|approved|rejected|revoking|revoked|canceling|canceled|error)["']"""
)
STATUS_SET = re.compile(rf"[{{(\[]\s*{STATUS}\s*,\s*{STATUS}")


def test_no_other_module_keeps_a_status_set():
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "statuses.py":
                continue
            if STATUS_SET.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    # clearance.hm lists the values HM can send (the wire format); the changelog's is the sync's
    # rule for which HM status proves a lost request arrived (a move, clearance.state's kind);
    # notifications hears statuses through fleet events and names the two a defleet starts.
    assert sorted(offenders) == [
        "clearance/changelog.py",
        "clearance/hm/types.py",
        "notifications/evaluation.py",
    ]
