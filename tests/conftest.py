import os
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from organizations.middleware import SESSION_KEY
from organizations.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.support.worker import (
    purge_broker,
    start_worker,
    wait_until_ready,
    worker_mail_folder,
)

ROOT = Path(__file__).resolve().parent.parent
# The fault suite starts a whole production stack of its own: its own step (`make faults`).
collect_ignore = [] if os.environ.get("FAULT_SUITE") == "1" else ["faults"]
SHARED_DIR = ROOT.parent / "shared"

# Property tests check behaviour, never speed: on a busy shared machine Hypothesis's per-example
# deadline and its "generation too slow" check would measure the machine instead.
hypothesis_settings.register_profile(
    "fleetportal", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("fleetportal")


@pytest.fixture
def organization(db):
    return OrganizationFactory(name="Acme Logistics", slug="acme")


@pytest.fixture
def other_organization(db):
    return OrganizationFactory(name="Other Fleet", slug="other")


def _member(organization, role):
    return MembershipFactory(organization=organization, role=role).user


@pytest.fixture
def owner_user(organization):
    return _member(organization, Role.OWNER)


@pytest.fixture
def manager_user(organization):
    return _member(organization, Role.MANAGER)


@pytest.fixture
def viewer_user(organization):
    return _member(organization, Role.VIEWER)


def logged_in_client(user, organization) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_KEY] = str(organization.public_id)
    session.save()
    return client


@pytest.fixture
def owner_client(owner_user, organization):
    return logged_in_client(owner_user, organization)


@pytest.fixture
def manager_client(manager_user, organization):
    return logged_in_client(manager_user, organization)


@pytest.fixture
def viewer_client(viewer_user, organization):
    return logged_in_client(viewer_user, organization)


@pytest.fixture
def user_factory(db):
    return UserFactory


# --- A real Celery worker -------------------------------------------------------------------------


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class WorkerManager:
    """Starts the test worker when a test asks for it, and stops it before a test that empties
    the database without it: a task left over from an earlier test (a retry due later, a
    delayed webhook) must not hold locks while the database is truncated (a deadlock) or act
    on the next test's data."""

    def __init__(self, live_server):
        self.live_server = live_server
        self.worker: WorkerProcess | None = None
        self.starts = 0

    def ensure_running(self) -> WorkerProcess:
        # For every test that uses the worker: a test's `settings` fixture may have put back the
        # values it started with (the simulator's webhooks must reach the live server).
        settings.SITE_URL = self.live_server.url
        settings.HM_SIMULATOR_BASE_URL = f"{self.live_server.url}/simulator"
        if self.worker is not None and self.worker.process.poll() is None:
            return self.worker
        self.worker = self._start()
        return self.worker

    def stop(self) -> None:
        if self.worker is None:
            return
        # Killed, not shut down warmly: a task waiting on a 30 s HTTP timeout would hold us up.
        # Its database connections close with it, and what it left in the broker is purged.
        self.worker.process.kill()
        self.worker.process.wait(timeout=20)
        self.worker = None
        purge_broker()

    def _start(self) -> WorkerProcess:
        self.starts += 1
        # One log per start and test run, so parallel runs on one machine do not overwrite
        # each other.
        log_path = settings.VAR_DIR / f"test-celery-worker-{os.getpid()}-{self.starts}.log"
        live_url = self.live_server.url
        purge_broker()
        process = start_worker(
            log_path=log_path,
            SITE_URL=live_url,
            HM_SIMULATOR_BASE_URL=f"{live_url}/simulator",
            # The worker's emails are files a test can read (tests.notifications.mailbox).
            EMAIL_URL=f"file://{worker_mail_folder()}",
        )
        worker = WorkerProcess(process, log_path)
        if not wait_until_ready(process, log_path):
            process.kill()
            pytest.fail(f"Celery worker did not start:\n{worker.log()[-3000:]}")
        return worker


_WORKER_MANAGER_KEY = pytest.StashKey[WorkerManager]()


@pytest.fixture(scope="session")
def worker_manager(request, django_db_setup, django_db_blocker, live_server):
    manager = WorkerManager(live_server)
    request.session.stash[_WORKER_MANAGER_KEY] = manager
    yield manager
    if manager.worker is not None:
        manager.worker.process.terminate()
        try:
            manager.worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            manager.worker.process.kill()


@pytest.fixture
def celery_worker(worker_manager):
    """A real `celery worker` process on the test database and the configured broker.

    Tests using it need committed data: use `transactional_db` (and `live_server` for the simulator).
    """
    return worker_manager.ensure_running()


def _truncates_the_database(request) -> bool:
    if "transactional_db" in request.fixturenames or "live_server" in request.fixturenames:
        return True
    marker = request.node.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction"))


@pytest.fixture(autouse=True)
def _no_leftover_worker_tasks(request):
    """Before a test that empties the database at its end without the worker, stop the worker
    (if an earlier test started it); the next test that needs it starts a fresh one."""
    if "celery_worker" not in request.fixturenames and _truncates_the_database(request):
        manager = request.session.stash.get(_WORKER_MANAGER_KEY, None)
        if manager is not None:
            manager.stop()
    yield


def wait_for(
    predicate, *, timeout: float = 30.0, interval: float = 0.2, message: str = "condition"
):
    """Poll until predicate() is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"Timed out after {timeout:.0f}s waiting for {message}")
