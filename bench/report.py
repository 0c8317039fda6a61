"""The one table every benchmark reports into: FleetPortal's figure beside its ceiling measured
in the same run, their ratio and the goal.

A benchmark calls ``row(measure, ours, ceiling, unit, goal)`` for each measure it takes: the row
is printed at once, and appended to the file named by ``BENCH_REPORT`` when set (``bench/run.py``,
i.e. ``make bench``, sets it and prints every benchmark's rows as one table at the end, with
"not measured" and the reason for each measure no benchmark reported).

The ratio is always ours ÷ ceiling: for times (lower is better) 1.0 is the ceiling and more is
slower; for rates (higher is better) 1.0 is the ceiling and less is slower. ``MEASURES`` is the
table of issue 13, in its order; a benchmark may report other measures too (they are listed after).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass

# measure -> (what is measured, the ceiling measured beside it, goal, the benchmark measuring it)
MEASURES: dict[str, tuple[str, str, str, str]] = {
    "fleet-overview-10k": (
        "Fleet overview at 10k vehicles, p50 (test client)",
        "the same page with counters for free",
        "≤ 40 ms",
        "bench/fleet_overview.py",
    ),
    "fleet-overview-100k": (
        "Fleet overview at 100k vehicles, p50 (test client)",
        "the same page with counters for free",
        "≤ 40 ms",
        "bench/fleet_overview.py",
    ),
    "fleet-overview-flat": (
        "Fleet overview p50, 100k beside 10k",
        "the overview at 10k",
        "within 1.3×",
        "bench/fleet_overview.py",
    ),
    "fleet-last-page-100k": (
        "Last page at 100k, p50",
        "the same 50 rows as a keyset page",
        "≤ 40 ms",
        "bench/fleet_overview.py",
    ),
    "fleet-middle-page-100k": (
        "Middle page at 100k (farthest from both ends), p50",
        "the same keyset page",
        "≤ 40 ms for any page",
        "bench/fleet_overview.py",
    ),
    "csv-import-vs-copy": (
        "CSV import of 100k rows, preview + import",
        "plain COPY of the same rows",
        "≥ 10,000 rows/s, ≥ 0.7× COPY",
        "bench/csv_import.py",
    ),
    "csv-import-vs-iie": (
        "CSV import of 100k rows, preview + import",
        "django-import-export (fastest set-up)",
        "≥ 10,000 rows/s",
        "bench/csv_import.py",
    ),
    "hm-sends-after-import": (
        "HM sends after a 100k import",
        "after ANALYZE",
        "≥ 3,000 VINs/s",
        "bench/csv_import.py",
    ),
    "webhooks-vs-one-query": (
        "Webhook ingestion, gunicorn 2 workers",
        "a view doing one query",
        "≥ 500/s, nothing lost",
        "bench/webhooks.py",
    ),
    "webhooks-vs-one-insert": (
        "Webhook ingestion, gunicorn 2 workers",
        "a view storing the body with one INSERT",
        "≥ 500/s, nothing lost",
        "bench/webhooks.py",
    ),
    "webhooks-vs-bare": (
        "Webhook ingestion, gunicorn 2 workers",
        "a bare POST view",
        "≥ 500/s, nothing lost",
        "bench/webhooks.py",
    ),
    "webhooks-applying": (
        "Webhook applying (confirmed with HM)",
        "",
        "≥ 500/s, flat as deliveries accumulate",
        "bench/webhooks.py",
    ),
    "webhook-visible-browser": (
        "Webhook → row visible in Chromium, p95, quiet",
        "the change in the database, p95",
        "≤ 2 s",
        "bench/live_updates.py",
    ),
    "webhook-visible-browser-burst": (
        "Webhook → row visible in Chromium, p95, in a burst",
        "the change in the database, p95",
        "≤ 2 s during a 5,000-webhook burst",
        "bench/live_updates.py",
    ),
    "first-sync-1pct": (
        "First sync after onboarding 10k, 1 % changed",
        "later syncs",
        "≤ 1 s, writes only changed rows",
        "bench/lifecycle.py",
    ),
    "embedded-wakers": (
        "Embedded defaults: short tasks through the filesystem broker, Procfile worker",
        "the same task bodies run in-process (no broker)",
        "≥ 50/s",
        "bench/embedded.py",
    ),
    "embedded-webhooks": (
        "Embedded defaults (SQLite, filesystem broker): webhooks stored and confirmed",
        "the same webhooks confirmed in-process (no broker)",
        "≥ 50/s",
        "bench/embedded.py",
    ),
    "embedded-import-batches": (
        "Embedded defaults: import batches (one task each), importer worker",
        "the same batches run in-process (no broker)",
        "≥ 50/s",
        "bench/embedded.py",
    ),
}


@dataclass
class Row:
    measure: str
    ours: float | None
    ceiling: float | None
    unit: str
    goal: str
    what: str = ""
    ceiling_what: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.ceiling:
            return None
        return self.ours / self.ceiling


def row(
    measure: str,
    ours: float | None,
    ceiling: float | None,
    unit: str,
    goal: str = "",
    *,
    note: str = "",
) -> Row:
    """Report one measure: print it and keep it for ``make bench``'s table."""
    what, ceiling_what, default_goal, _bench = MEASURES.get(measure, (measure, "", "", ""))
    result = Row(measure, ours, ceiling, unit, goal or default_goal, what, ceiling_what, note)
    print_table([result], title=None)
    path = os.environ.get("BENCH_REPORT")
    if path:
        keep(result, path)
    return result


def keep(result: Row, path: str) -> None:
    """Append a row to the report file at `path` (JSON lines)."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(result)) + "\n")


def read_lines(path: str) -> list[Row]:
    """Every row in the report file, as reported (one per run)."""
    try:
        with open(path, encoding="utf-8") as source:
            return [Row(**json.loads(line)) for line in source if line.strip()]
    except FileNotFoundError:
        return []


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def read(path: str) -> list[Row]:
    """The rows reported into `path` (several runs: the median of each measure's figures)."""
    runs: dict[str, list[Row]] = {}
    for reported in read_lines(path):
        runs.setdefault(reported.measure, []).append(reported)
    rows = []
    for reports in runs.values():
        last = reports[-1]
        ours = [r.ours for r in reports if r.ours is not None]
        ceilings = [r.ceiling for r in reports if r.ceiling is not None]
        ratios = [r.ratio for r in reports if r.ratio is not None]
        merged = Row(
            last.measure,
            median(ours) if ours else None,
            median(ceilings) if ceilings else None,
            last.unit,
            last.goal,
            last.what,
            last.ceiling_what,
            last.note if len(reports) == 1 else f"median of {len(reports)} runs; {last.note}",
        )
        merged.__dict__["median_ratio"] = median(ratios) if ratios else None
        rows.append(merged)
    return rows


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}"


def print_table(
    rows: list[Row],
    *,
    title: str | None = "FleetPortal beside its ceilings",
    reasons: dict[str, str] | None = None,
) -> None:
    """The rows as one table, the issue's measures first, each missing one as not measured
    with the reason (`reasons`: benchmark -> why it reported nothing)."""
    reasons = reasons or {}
    lines = []
    if title:
        by_measure = {r.measure: r for r in rows}
        ordered: list[Row | tuple[str, str]] = []
        for measure, (_what, _ceiling, _goal, bench) in MEASURES.items():
            ordered.append(by_measure.pop(measure, None) or (measure, bench))
        ordered.extend(by_measure.values())
    else:
        ordered = list(rows)
    header = f"{'measure':<52} {'FleetPortal':>14} {'ceiling':>14} {'ratio':>7}  goal"
    if title:
        lines += ["", title, header, "-" * (len(header) + 30)]
    for item in ordered:
        if isinstance(item, tuple):
            measure, bench = item
            what, ceiling_what, goal, _ = MEASURES[measure]
            lines.append(f"{what[:52]:<52} {'not measured':>14} {'':>14} {'':>7}  {goal}")
            reason = reasons.get(bench, f"{bench} did not report this measure in this run")
            ceiling = f"ceiling: {ceiling_what}; " if ceiling_what else ""
            lines.append(f"{'':<4}{ceiling}not measured: {reason}")
            continue
        ratio = item.__dict__.get("median_ratio", item.ratio)
        lines.append(
            f"{item.what[:52]:<52} {_figure(item.ours, item.unit):>14} "
            f"{_figure(item.ceiling, item.unit):>14} "
            f"{(f'{ratio:.2f}×' if ratio is not None else '—'):>7}  {item.goal}"
        )
        detail = "; ".join(part for part in (item.ceiling_what, item.note) if part)
        if detail:
            lines.append(f"{'':<4}ceiling: {detail}" if item.ceiling_what else f"{'':<4}{detail}")
    print("\n".join(lines), flush=True)
