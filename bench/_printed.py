"""Rows of ``make bench``'s table read from what a benchmark printed, for the benchmarks that
print their figures and their ceilings themselves instead of calling ``report.row``.

Each reader takes the benchmark's whole output and returns the rows it found (never a figure
that was not printed in this run); a line it cannot find leaves its measure "not measured", and
``bench/run.py`` says which benchmark's output lacked it. A benchmark that reports a measure
through ``report.row`` itself wins over what is read here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import report


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def csv_import(output: str) -> list[report.Row]:
    rates = {}
    for label in ("fleetportal", "plain COPY", "import-export fastest", "import-export default"):
        match = re.search(
            rf"^{re.escape(label)}\s+([\d,]+)\s+([\d.]+)\s+([\d,]+)\s", output, re.MULTILINE
        )
        if match:
            rates[label] = _number(match.group(3))
    rows = []
    if "fleetportal" in rates and "plain COPY" in rates:
        rows.append(_row("csv-import-vs-copy", rates["fleetportal"], rates["plain COPY"], "rows/s"))
    if "fleetportal" in rates and "import-export fastest" in rates:
        note = ""
        if "import-export default" in rates:
            note = (
                f"django-import-export default set-up: {rates['import-export default']:,.0f} rows/s"
            )
        rows.append(
            _row(
                "csv-import-vs-iie",
                rates["fleetportal"],
                rates["import-export fastest"],
                "rows/s",
                note,
            )
        )
    match = re.search(
        r"HM sends right after the import: ([\d,]+) VINs/s.*?\(the ceiling\): ([\d,]+) VINs/s",
        output,
        re.S,
    )
    if match:
        rows.append(_row("hm-sends-after-import", _number(match[1]), _number(match[2]), "VINs/s"))
    return rows


def webhooks(output: str) -> list[report.Row]:
    rows = []
    failed = "FAILED" in output or "a check failed" in output
    note = "a check FAILED (see its output)" if failed else "every check ok: nothing lost"
    match = re.search(
        r"receive rate (\d+)/s \| ceiling, a view doing one query: (\d+)/s .*?"
        r"a bare POST answer: (\d+)/s",
        output,
    )
    if match:
        ours, one_query, bare = (_number(group) for group in match.groups())
        rows.append(_row("webhooks-vs-one-query", ours, one_query, "/s", note))
        rows.append(_row("webhooks-vs-bare", ours, bare, "/s", note))
    match = re.search(r"receive rate (\d+)/s \|.*? one INSERT: (\d+)/s", output)
    if match:
        ours, one_insert = (_number(group) for group in match.groups())
        rows.append(_row("webhooks-vs-one-insert", ours, one_insert, "/s", note))
    match = re.search(r"^confirmation rate\s+(\d+) webhooks/s", output, re.MULTILINE)
    if match:
        rows.append(_row("webhooks-applying", _number(match[1]), None, "/s", note))
    return rows


def lifecycle(output: str) -> list[report.Row]:
    match = re.search(
        r"First sync after onboarding, 1 % changed: ([\d.]+) s, (\d+) queries, ([\d,]+) rows "
        r"written; ceiling, the same sync with nothing to write: ([\d.]+) s, (\d+) queries",
        output,
    )
    if not match:
        return []
    note = f"{match[2]} queries, {match[3]} rows written (the ceiling: {match[5]} queries)"
    return [_row("first-sync-1pct", _number(match[1]), _number(match[4]), "s", note)]


def live_updates(output: str) -> list[report.Row]:
    rows = []
    for measure, label in (
        ("webhook-visible-browser", r"quiet"),
        ("webhook-visible-browser-burst", r"during a [\d,]+ burst"),
    ):
        match = re.search(
            rf"^{label}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)",
            output,
            re.MULTILINE,
        )
        if match:
            note = f"{match[1]} webhooks, p50 {match[2]} s, max {match[4]} s"
            rows.append(_row(measure, _number(match[3]), _number(match[6]), "s", note))
    return rows


def _row(measure: str, ours: float, ceiling: float | None, unit: str, note: str = "") -> report.Row:
    what, ceiling_what, goal, _bench = report.MEASURES.get(measure, (measure, "", "", ""))
    return report.Row(measure, ours, ceiling, unit, goal, what, ceiling_what, note)


READERS: dict[str, Callable[[str], list[report.Row]]] = {
    "bench/csv_import.py": csv_import,
    "bench/webhooks.py": webhooks,
    "bench/lifecycle.py": lifecycle,
    "bench/live_updates.py": live_updates,
}
