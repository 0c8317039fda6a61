"""What scripts/production_local.sh checks after the acceptance journey: the server logs hold no
5xx, traceback or error, and the journey's JUnit report shows tests that ran and passed.

    python -m tests.acceptance.report logs LOG_DIR      # exit 1 and list the problems
    python -m tests.acceptance.report junit REPORT.xml  # exit 1 unless >0 passed, none else

Plain Python (no Django), so it runs without settings.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

# gunicorn's access log: host ident user [time] "request" status size "referer" "agent".
ACCESS_LINE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(?P<request>[^"]*)" (?P<status>\d{3}) ')
# Anything else that means a request or a task broke. Celery writes "[time: ERROR/Process]";
# Django's request logger writes "time ERROR django.request ..."; gunicorn "[time] [pid] [ERROR]".
PROBLEM_LINE = re.compile(
    r"Traceback \(most recent call last\)"
    r"|\b(ERROR|CRITICAL)/"
    r"| (ERROR|CRITICAL) "
    r"|\[(ERROR|CRITICAL)\]"
    # A 5xx from the portal or the simulator as a worker saw it, in its retry or failure line.
    r"|\bHMServerError\b|\bWebhookNotDelivered\b"
)


def log_problems(log_dir: Path) -> list[str]:
    """Every 5xx answer in gunicorn's access log and every error line in any *.log file."""
    problems = []
    for log in sorted(log_dir.glob("*.log")):
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            access = ACCESS_LINE.match(line)
            if access:
                if access["status"].startswith("5"):
                    problems.append(f"{log.name}:{number}: {access['status']} {access['request']}")
                continue
            if PROBLEM_LINE.search(line):
                problems.append(f"{log.name}:{number}: {line.strip()[:300]}")
    return problems


@dataclass(frozen=True)
class JunitCounts:
    tests: int
    failures: int
    errors: int
    skipped: int

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def ok(self) -> bool:
        return self.passed > 0 and self.passed == self.tests

    def __str__(self) -> str:
        return (
            f"{self.passed} passed, {self.failures} failed, {self.errors} errors, "
            f"{self.skipped} skipped"
        )


def junit_counts(report: Path) -> JunitCounts:
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {
        key: sum(int(suite.get(key, 0)) for suite in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }
    return JunitCounts(**total)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"logs", "junit"}:
        print(__doc__, file=sys.stderr)
        return 2
    what, path = argv[0], Path(argv[1])
    if what == "logs":
        problems = log_problems(path)
        for problem in problems:
            print(problem)
        print(f"Server logs in {path}: {len(problems)} problem(s).")
        return 1 if problems else 0
    if not path.is_file():
        print(f"No JUnit report at {path}: the journey did not run.")
        return 1
    counts = junit_counts(path)
    print(f"Acceptance journey: {counts}.")
    return 0 if counts.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
