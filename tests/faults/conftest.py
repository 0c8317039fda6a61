"""The fault suite's stack (one per run: private PostgreSQL and Redis, gunicorn, worker,
importer, beat) and its report of each scenario's figures, printed at the end of the run."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.faults.stack import ROOT, Stack

REPORT_KEY = pytest.StashKey[list]()
STARTED_KEY = pytest.StashKey[float]()


def pytest_configure(config):
    config.stash[REPORT_KEY] = []
    config.stash[STARTED_KEY] = time.monotonic()


@pytest.fixture(scope="session")
def stack(request):
    for tool in ("redis-server", "runuser"):
        if shutil.which(tool) is None:
            pytest.fail(f"The fault suite needs {tool} (apt-get install redis-server util-linux)")
    stack = Stack()
    started = time.monotonic()
    try:
        stack.up()
    except BaseException as exc:  # Ctrl-C too: nothing started may outlive the run
        stack.down()
        if not isinstance(exc, Exception):
            stack.remove()
            raise
        pytest.fail(f"The fault suite's stack did not start ({exc}); logs in {stack.logs}")
    print(f"\nfault suite stack up in {time.monotonic() - started:.0f} s: {stack.base}")
    try:
        yield stack
    finally:
        stack.down()
    # The logs are kept when a scenario failed (they say why); otherwise everything goes.
    if request.session.testsfailed:
        kept = ROOT / "var" / "faults-logs"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(stack.logs, kept)
        print(f"\nfault suite logs kept in {kept}")
    stack.remove()


@pytest.fixture
def report(request):
    """A scenario's figures: ``report["name"] = value``; printed in the run's summary."""
    figures: dict = {"scenario": request.node.name}
    started = time.monotonic()
    yield figures
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures["outcome"] = getattr(request.node, "call_outcome", "not run")
    request.config.stash[REPORT_KEY].append(figures)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    result = yield
    if result.when == "call":
        item.call_outcome = result.outcome
    return result


def pytest_sessionfinish(session, exitstatus):
    """Under CI every scenario runs: a skipped one fails the run."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") == "true" and skipped and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = config.stash.get(REPORT_KEY, [])
    if not figures:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault suite report")
    for entry in figures:
        name = entry.pop("scenario")
        write(f"{name}: " + ", ".join(f"{k}={v}" for k, v in entry.items()))
    total = time.monotonic() - config.stash[STARTED_KEY]
    write(f"fault suite wall time: {total:.0f} s ({os.cpu_count()} cores)")
    out = Path(os.environ.get("FAULTS_REPORT", ROOT / "var" / "faults-report.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scenarios": figures, "wall_s": round(total)}, indent=2))
