"""What a scenario checks, read straight from the stack's database: the simulator's truth (its
own tables: what HM received, how often, and each clearance's status computed from time as the
simulated API computes it) against the portal's clearances and imports."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from simulator.behaviour import Facts, next_change_at, timeline
from tests.faults.stack import Stack

IMPORT_FINISHED = {"done", "failed", "canceled"}


@dataclass
class Fleet:
    """One scenario's organization, simulated HM app and VINs."""

    slug: str
    organization_id: int
    credential_id: int
    app_id: int
    webhook_url: str
    webhook_secret: str
    vins: set[str] = field(default_factory=set)
    import_ids: list[int] = field(default_factory=list)
    # Requests HM should have seen per VIN (a re-onboarded vehicle: 2).
    expected_requests: dict[str, int] = field(default_factory=dict)


@dataclass
class Snapshot:
    portal: dict[str, str]
    simulator: dict[str, str]
    requests: dict[str, int]
    settled: dict[str, bool]
    history: dict[str, list[tuple[str, str | None]]]  # vin -> HM's (status, reason) this round
    imports: dict[int, tuple[str, int, int]]  # id -> (status, processed, total)

    def mismatches(self, fleet: Fleet) -> list[str]:
        return sorted(
            vin for vin in fleet.vins if self.portal.get(vin) != self.simulator.get(vin, "unknown")
        )

    def wrong_counts(self, fleet: Fleet) -> dict[str, int]:
        return {
            vin: self.requests.get(vin, 0)
            for vin in fleet.vins
            if self.requests.get(vin, 0) != fleet.expected_requests.get(vin, 1)
        }

    def unfinished_imports(self) -> list[int]:
        return [
            pk
            for pk, (status, processed, total) in self.imports.items()
            if status != "done" or processed != total
        ]

    def unsettled(self, fleet: Fleet) -> list[str]:
        return sorted(vin for vin in fleet.vins if not self.settled.get(vin, False))

    def converged(self, fleet: Fleet) -> bool:
        return (
            not self.mismatches(fleet)
            and not self.wrong_counts(fleet)
            and not self.unfinished_imports()
            and not self.unsettled(fleet)
        )


def simulator_now(stack: Stack) -> datetime:
    rows = stack.sql("SELECT offset_seconds FROM simulator_simulatorclock LIMIT 1")
    offset = rows[0][0] if rows else 0.0
    return datetime.now(UTC) + timedelta(seconds=offset)


def snapshot(stack: Stack, fleet: Fleet) -> Snapshot:
    portal = dict(
        stack.sql(
            "SELECT v.vin, c.status FROM clearance_clearance c "
            "JOIN vehicles_vehicle v ON v.id = c.vehicle_id WHERE v.organization_id = %s",
            [fleet.organization_id],
        )
    )
    now = simulator_now(stack)
    simulator, requests, settled, history = {}, {}, {}, {}
    for row in stack.sql(
        "SELECT vin, brand, requested_at, approval_delay_seconds, removal_delay_seconds, "
        "control_odometer_km, deleted_at, delete_action, times_requested "
        "FROM simulator_simclearance WHERE app_id = %s",
        [fleet.app_id],
    ):
        facts = Facts(
            vin=row[0],
            brand=row[1],
            requested_at=row[2],
            approval_delay=timedelta(seconds=row[3]),
            removal_delay=timedelta(seconds=row[4]),
            control_odometer_km=row[5],
            deleted_at=row[6],
            delete_action=row[7],
        )
        entries = timeline(facts, now)
        simulator[row[0]] = entries[-1].status
        history[row[0]] = [(entry.status, entry.reason) for entry in entries]
        requests[row[0]] = row[8]
        settled[row[0]] = next_change_at(facts, now) is None
    imports = {}
    if fleet.import_ids:
        for pk, status, processed, total in stack.sql(
            "SELECT id, status, processed, total FROM vehicles_importjob WHERE id = ANY(%s)",
            [fleet.import_ids],
        ):
            imports[pk] = (status, processed, total)
    return Snapshot(portal, simulator, requests, settled, history, imports)


def requested_vins(stack: Stack, fleet: Fleet) -> int:
    return stack.sql(
        "SELECT count(*) FROM simulator_simclearance WHERE app_id = %s", [fleet.app_id]
    )[0][0]


def imported_rows(stack: Stack, job_id: int) -> int:
    return stack.sql("SELECT processed FROM vehicles_importjob WHERE id = %s", [job_id])[0][0]


def wait_until(check, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # the database may be the part that is down
            pass
        time.sleep(step)
    return False


def converge(stack: Stack, fleet: Fleet, timeout: float) -> tuple[float | None, Snapshot]:
    """Seconds until everything agrees with the simulator (None: not within ``timeout``) and
    the last snapshot."""
    start = time.monotonic()
    last: Snapshot | None = None
    while True:
        try:
            last = snapshot(stack, fleet)
            if last.converged(fleet):
                return time.monotonic() - start, last
        except psycopg.OperationalError:  # the database is down: look again
            if last is None and time.monotonic() - start > timeout:
                raise
        if time.monotonic() - start > timeout:
            assert last is not None
            return None, last
        time.sleep(0.5)


def describe(snap: Snapshot, fleet: Fleet) -> str:
    """What is still wrong, in a few lines (for an assertion message)."""
    mismatches = snap.mismatches(fleet)
    pairs = Counter(
        (snap.portal.get(v, "missing"), snap.simulator.get(v, "unknown")) for v in mismatches
    )
    counts = Counter(snap.wrong_counts(fleet).values())
    return (
        f"{len(mismatches)} of {len(fleet.vins)} VINs differ from HM "
        f"(portal, HM: count) {dict(pairs)}; "
        f"VINs requested a wrong number of times (times: VINs) {dict(counts)}; "
        f"unfinished imports {[snap.imports[pk] for pk in snap.unfinished_imports()]}; "
        f"not settled at HM {len(snap.unsettled(fleet))}"
    )


# --- webhooks as HM sends them --------------------------------------------------------------------


def sign(secret: str, body: bytes) -> dict[str, str]:
    return {
        "X-HM-Signature-256": "sha256="
        + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        "X-HM-Signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest(),
    }


def post_webhook(fleet: Fleet, body: bytes, delivery_id: str | None = None) -> int:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "HM-Webhook/1.2.0",
        "X-HM-Event": "fleet_clearance_changed",
        "X-HM-Delivery": delivery_id or str(uuid.uuid4()),
        **sign(fleet.webhook_secret, body),
    }
    request = urllib.request.Request(fleet.webhook_url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code


def sent_webhook_bodies(stack: Stack, fleet: Fleet) -> list[bytes]:
    """Every clearance webhook body the simulated HM sent this fleet's app."""
    return [
        body.encode()
        for (body,) in stack.sql(
            "SELECT body FROM simulator_simwebhookdelivery "
            "WHERE app_id = %s AND event = 'fleet_clearance_changed' ORDER BY id",
            [fleet.app_id],
        )
    ]


def webhook_action(body: bytes) -> str:
    return json.loads(body)["event"]["action"]
