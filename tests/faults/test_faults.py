"""Fault scenarios against the production shape (see docs/durability.md#the-fault-suite).

Each scenario starts work (an onboarding, a CSV import, webhooks), injects one fault while the
work runs, removes it, and then asserts that within ``CONVERGE_SECONDS`` (far below the periodic
sync's interval, so only the reconciler can make it) every VIN was requested from HM exactly once
(the simulator counts every POST naming a VIN, answered or not), every import is complete and
every clearance is in the state the simulated HM has for it. The figures go to the run's report.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.faults.driver import vins
from tests.faults.observe import (
    Fleet,
    converge,
    describe,
    requested_vins,
    wait_until,
)
from tests.faults.stack import SUITE_SETTINGS, Stack

pytestmark = pytest.mark.slow

VINS = int(os.environ.get("FAULTS_VINS", "80"))
IMPORT_ROWS = int(os.environ.get("FAULTS_IMPORT_ROWS", "150"))
# After a fault ends, everything must agree with HM within this (the reconciler runs every
# RECONCILE_INTERVAL_SECONDS; HM approves after SIMULATOR_APPROVAL_DELAY_SECONDS; the sync runs
# every 300 s and cannot help).
CONVERGE_SECONDS = float(os.environ.get("FAULTS_CONVERGE_SECONDS", "90"))
RECONCILE = float(SUITE_SETTINGS["RECONCILE_INTERVAL_SECONDS"])
# A little HM latency (below the read timeout) so a fault lands in the middle of the work.
PACED_MS = 300


def new_fleet(stack: Stack, name: str) -> Fleet:
    slug = f"{name}-{uuid.uuid4().hex[:6]}"
    return Fleet(slug=slug, **json.loads(stack.driver("setup", slug)))


def onboard(stack: Stack, fleet: Fleet, prefix: str, count: int) -> None:
    stack.driver("onboard", fleet.slug, prefix, str(count))
    fleet.vins |= set(vins(prefix, count))


def start_import(stack: Stack, fleet: Fleet, prefix: str, count: int) -> int:
    job_id = json.loads(stack.driver("import", fleet.slug, prefix, str(count)))["job_id"]
    fleet.import_ids.append(job_id)
    fleet.vins |= set(vins(prefix, count))
    return job_id


def hm_latency(stack: Stack, fleet: Fleet, milliseconds: int | None) -> None:
    """The simulated app's answer delay (its admin's fault knob)."""
    stack.sql(
        "UPDATE simulator_simulatedapp SET latency_ms = %s WHERE id = %s RETURNING id",
        [milliseconds, fleet.app_id],
    )


def wait_requested(stack: Stack, fleet: Fleet, at_least: int, timeout: float = 120) -> int:
    assert wait_until(lambda: requested_vins(stack, fleet) >= at_least, timeout), (
        f"HM never saw {at_least} VINs"
    )
    return requested_vins(stack, fleet)


def assert_converges(stack: Stack, fleet: Fleet, report: dict) -> None:
    seconds, snap = converge(stack, fleet, CONVERGE_SECONDS)
    report["vins"] = len(fleet.vins)
    report["hm_requests"] = sum(snap.requests.get(vin, 0) for vin in fleet.vins)
    report["vins_not_once"] = len(snap.wrong_counts(fleet))
    report["wrong_state"] = len(snap.mismatches(fleet))
    report["imports"] = [f"{s} {p}/{t}" for s, p, t in snap.imports.values()] or "-"
    report["converged_s"] = round(seconds, 1) if seconds is not None else f">{CONVERGE_SECONDS:.0f}"
    assert seconds is not None, describe(snap, fleet)


# --- scenarios ----------------------------------------------------------------------------------


def test_no_fault(stack, report):
    """The reference: onboarding and a CSV import with nothing going wrong."""
    fleet = new_fleet(stack, "baseline")
    onboard(stack, fleet, "2FLTBASE", VINS)
    start_import(stack, fleet, "2FLTBCSV", VINS)
    assert_converges(stack, fleet, report)
