"""Fault scenarios against the production shape (see docs/durability.md#the-fault-suite).

Each scenario starts work (an onboarding, a CSV import, webhooks), injects one fault while the
work runs, removes it, and then asserts that within ``CONVERGE_SECONDS`` (the periodic sync is
off, so only the reconciler can make it) every VIN was requested from HM exactly once
(the simulator counts every POST naming a VIN, answered or not), every import is complete and
every clearance is in the state the simulated HM has for it. The figures go to the run's report.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults.driver import vins
from tests.faults.observe import (
    Fleet,
    converge,
    describe,
    imported_rows,
    post_webhook,
    requested_vins,
    sent_webhook_bodies,
    snapshot,
    wait_until,
    webhook_action,
)
from tests.faults.stack import SUITE_SETTINGS, Stack

pytestmark = pytest.mark.slow

VINS = int(os.environ.get("FAULTS_VINS", "80"))
IMPORT_ROWS = int(os.environ.get("FAULTS_IMPORT_ROWS", "200"))
# After a fault ends, everything must agree with HM within this (the reconciler runs every
# RECONCILE_INTERVAL_SECONDS; HM approves after SIMULATOR_APPROVAL_DELAY_SECONDS; the periodic
# sync is off for the run and cannot help).
CONVERGE_SECONDS = float(os.environ.get("FAULTS_CONVERGE_SECONDS", "120"))
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


def test_worker_kill9_mid_onboarding(stack, report):
    """kill -9 of the whole worker (main process and pool) while it sends an onboarding."""
    fleet = new_fleet(stack, "worker-kill")
    hm_latency(stack, fleet, PACED_MS)
    onboard(stack, fleet, "2FLTWKLL", VINS)
    report["hm_vins_at_kill"] = wait_requested(stack, fleet, VINS // 4)
    stack.kill_group("worker")
    stack.restart("worker")
    hm_latency(stack, fleet, None)
    assert_converges(stack, fleet, report)


def test_worker_sigterm_mid_onboarding(stack, report):
    """SIGTERM (a deploy, a container stop) mid-onboarding: a warm shutdown within 10 s; the
    rest of the onboarding stays due and is sent by the next worker. HM answers each batch in
    1.5 s, so sending the whole onboarding before stopping would take longer than that."""
    fleet = new_fleet(stack, "worker-term")
    hm_latency(stack, fleet, 1500)
    onboard(stack, fleet, "2FLTWTRM", 200)
    report["hm_vins_at_term"] = wait_requested(stack, fleet, 20)
    took = stack.stop("worker", grace=60)
    report["warm_shutdown_s"] = round(took, 1)
    report["hm_vins_at_exit"] = requested_vins(stack, fleet)
    stack.start("worker")
    stack.wait_ready("worker")
    hm_latency(stack, fleet, None)
    assert_converges(stack, fleet, report)
    assert took <= 10, f"the worker took {took:.1f} s to stop after SIGTERM"


def _import_killed(stack: Stack, report: dict, name: str, prefix: str, kill) -> None:
    fleet = new_fleet(stack, name)
    job_id = start_import(stack, fleet, prefix, IMPORT_ROWS)
    assert wait_until(lambda: imported_rows(stack, job_id) >= 20, 120, step=0.05), (
        "the import never started"
    )
    kill()
    report["rows_at_kill"] = imported_rows(stack, job_id)
    assert report["rows_at_kill"] < IMPORT_ROWS, "the import ended before the kill"
    assert_converges(stack, fleet, report)


def test_importer_child_kill9_mid_import(stack, report):
    """kill -9 of the importer's pool process only (as the OOM killer does) mid-import."""

    def kill():
        report["killed_pids"] = len(stack.kill_children("importer"))

    _import_killed(stack, report, "importer-child", "2FLTCHLD", kill)


def test_importer_kill9_mid_import(stack, report):
    """kill -9 of the whole importer (main process and pool) mid-import; then started again."""

    def kill():
        stack.kill_group("importer")
        stack.restart("importer")

    _import_killed(stack, report, "importer-kill", "2FLTPRNT", kill)


def test_redis_down_30s(stack, report):
    """Redis (no persistence) gone for 30 s mid-onboarding: every message in it is lost; a
    fleet manager adds vehicles meanwhile."""
    fleet = new_fleet(stack, "redis-down")
    hm_latency(stack, fleet, PACED_MS)
    onboard(stack, fleet, "2FLTRDS0", VINS)
    report["hm_vins_at_outage"] = wait_requested(stack, fleet, VINS // 4)
    down_at = time.monotonic()
    stack.redis.kill()
    onboard(stack, fleet, "2FLTRDS1", VINS // 4)
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    stack.redis.start()
    report["outage_s"] = round(time.monotonic() - down_at, 1)
    hm_latency(stack, fleet, None)
    assert_converges(stack, fleet, report)


def test_postgres_down_20s(stack, report):
    """PostgreSQL stopped for 20 s mid-onboarding (the simulated HM, living in the same
    database, answers errors meanwhile)."""
    fleet = new_fleet(stack, "postgres-down")
    hm_latency(stack, fleet, PACED_MS)
    onboard(stack, fleet, "2FLTPGDN", VINS)
    report["hm_vins_at_outage"] = wait_requested(stack, fleet, VINS // 4)
    down_at = time.monotonic()
    stack.postgres.stop("fast")
    time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
    stack.postgres.start()
    report["outage_s"] = round(time.monotonic() - down_at, 1)
    hm_latency(stack, fleet, None)
    assert_converges(stack, fleet, report)


def test_hm_slower_than_read_timeout(stack, report):
    """HM answers after 2.5 s while the client gives up after 2 s (HM_READ_TIMEOUT), for 20 s
    from the second batch on: HM got every batch the client timed out on, so nothing may be
    sent twice. (The first batch is answered at once, so the app token is already in hand.)"""
    fleet = new_fleet(stack, "hm-slow")
    hm_latency(stack, fleet, PACED_MS)
    onboard(stack, fleet, "2FLTSLW0", VINS)
    wait_requested(stack, fleet, 1)
    hm_latency(stack, fleet, 2500)
    slow_from = requested_vins(stack, fleet)
    time.sleep(20)
    report["hm_vins_while_slow"] = requested_vins(stack, fleet) - slow_from
    hm_latency(stack, fleet, None)
    assert_converges(stack, fleet, report)


def test_webhooks_three_times_shuffled(stack, report):
    """Every clearance webhook HM would send, each three times with new delivery ids, in a
    random order and concurrently; the simulated HM's own webhooks are off."""
    fleet = new_fleet(stack, "webhooks-x3")
    stack.sql(
        "UPDATE simulator_simulatedapp SET webhook_url = '' WHERE id = %s RETURNING id",
        [fleet.app_id],
    )
    prefix = "2FLTWHK3"
    onboard(stack, fleet, prefix, VINS)
    wait_requested(stack, fleet, VINS)
    assert wait_until(lambda: not snapshot(stack, fleet).unsettled(fleet), 60)
    stack.driver("defleet", fleet.slug, prefix, str(VINS // 2))
    assert wait_until(
        lambda: all(
            status == "revoked"
            for vin, status in snapshot(stack, fleet).simulator.items()
            if vin in set(vins(prefix, VINS // 2))
        ),
        90,
    ), "HM did not revoke the defleeted vehicles"
    snap = snapshot(stack, fleet)
    bodies = []
    for vin in sorted(fleet.vins):
        for status, reason in snap.history[vin]:
            event = {"action": status, **({"detail": reason} if reason else {})}
            body = json.dumps({"vehicle": {"vin": vin}, "event": event}, separators=(",", ":"))
            bodies += [body.encode()] * 3
    random.Random(17).shuffle(bodies)
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda body: post_webhook(fleet, body), bodies))
    report["webhooks_sent"] = len(bodies)
    report["webhooks_not_200"] = sum(1 for code in answers if code != 200)
    assert_converges(stack, fleet, report)


def test_replayed_webhook_with_new_delivery_id(stack, report):
    """A captured, correctly signed "revoked" webhook replayed with a new X-HM-Delivery after
    the vehicle was cleared again: it must not move the clearance."""
    fleet = new_fleet(stack, "replay")
    prefix, count = "2FLTRPLY", 10
    onboard(stack, fleet, prefix, count)
    assert_converges(stack, fleet, {})
    stack.driver("carmaker-revoke", fleet.slug, prefix, str(count))
    assert_converges(stack, fleet, {})
    stack.driver("reonboard", fleet.slug, prefix, str(count))
    fleet.expected_requests = dict.fromkeys(fleet.vins, 2)
    assert_converges(stack, fleet, {})
    captured = [b for b in sent_webhook_bodies(stack, fleet) if webhook_action(b) == "revoked"]
    assert len(captured) == count
    replayed_at = stack.sql("SELECT now()")[0][0]
    answers = [post_webhook(fleet, body) for body in captured]
    report["replayed"] = len(answers)
    # Long enough for the webhooks to be stored, their work claimed and done.
    time.sleep(5 * RECONCILE)
    moved = stack.sql(
        "SELECT count(*) FROM clearance_clearanceevent e JOIN clearance_clearance c "
        "ON c.id = e.clearance_id JOIN vehicles_vehicle v ON v.id = c.vehicle_id "
        "WHERE v.organization_id = %s AND e.at >= %s AND e.to_status <> 'approved'",
        [fleet.organization_id, replayed_at],
    )[0][0]
    report["moves_after_replay"] = moved
    assert_converges(stack, fleet, report)
    assert moved == 0, f"{moved} clearances moved after a replayed webhook"
