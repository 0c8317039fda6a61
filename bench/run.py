"""Run every benchmark in bench/ and print their figures as one table (``make bench``).

    python bench/run.py [--runs 3] [--only fleet_overview,webhooks] [--keep report.jsonl]
                        [--args csv_import="--rows 10000"]

Each benchmark runs as its own process with its default sizes, in turn (they share the machine,
never run side by side), and reports its rows through ``bench/report.py``; with ``--runs N``
each runs N times and the table shows the median of each figure and of each ratio. A measure of
issue 13's table that no benchmark reported is printed as "not measured", with the reason.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _printed  # noqa: E402 - bench/ is not a package
import report  # noqa: E402

NOT_BENCHMARKS = {"report.py", "run.py"}


def benchmarks(only: list[str]) -> list[Path]:
    """The scripts of bench/ (a module without a ``__main__`` block is a helper, not run)."""
    found = sorted(
        p
        for p in HERE.glob("*.py")
        if p.name not in NOT_BENCHMARKS
        and not p.name.startswith("_")
        and 'if __name__ == "__main__":' in p.read_text(encoding="utf-8")
    )
    if only:
        found = [p for p in found if p.stem in only]
    return found


def run_teed(command: list[str], *, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `command`, its output shown as it comes and kept."""
    lines = []
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    return process.returncode, "".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs of each benchmark")
    parser.add_argument("--only", default="", help="benchmarks to run, e.g. fleet_overview")
    parser.add_argument("--keep", help="keep the reported rows in this file (JSON lines)")
    parser.add_argument(
        "--args",
        action="append",
        default=[],
        metavar='NAME="ARGS"',
        help='arguments for one benchmark, e.g. --args csv_import="--rows 10000" (repeatable)',
    )
    args = parser.parse_args()
    only = [name.strip().removesuffix(".py") for name in args.only.split(",") if name.strip()]
    extra = {}
    for item in args.args:
        name, _, value = item.partition("=")
        extra[name.strip().removesuffix(".py")] = shlex.split(value)
    path = args.keep or tempfile.mkstemp(prefix="fleetportal-bench-", suffix=".jsonl")[1]
    if not args.keep:
        Path(path).write_text("")
    env = {**os.environ, "BENCH_REPORT": path}
    root = HERE.parent
    reasons: dict[str, str] = {}
    failed = []
    ran = set()
    for bench in benchmarks(only):
        name = f"bench/{bench.name}"
        ran.add(name)
        for run in range(1, args.runs + 1):
            print(f"== {name} (run {run} of {args.runs})", flush=True)
            started = time.monotonic()
            before = report.read_lines(path)
            command = [sys.executable, str(bench), *extra.get(bench.stem, [])]
            code, output = run_teed(command, cwd=root, env=env)
            print(f"== {name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
            if name in _printed.READERS:
                # Its figures as printed, for the measures it did not report itself.
                reported = {row.measure for row in report.read_lines(path)[len(before) :]}
                for row in _printed.READERS[name](output):
                    if row.measure not in reported:
                        report.keep(row, path)
            if code:
                failed.append(name)
                reasons[name] = f"{name} failed (exit {code}); its output is above"
                break
    for _measure, (_what, _ceiling, _goal, bench_name) in report.MEASURES.items():
        if bench_name in reasons:
            continue
        if not bench_name.startswith("bench/"):
            reasons[bench_name] = f"no benchmark in bench/ measures it yet ({bench_name})"
        elif not (root / bench_name).exists():
            reasons[bench_name] = f"{bench_name} is not in this checkout"
        elif bench_name not in ran:
            reasons[bench_name] = f"{bench_name} was not run (--only)"
        else:
            reasons[bench_name] = (
                f"{bench_name} ran but neither reported this measure nor printed it in the form "
                "bench/_printed.py reads (its own figures are above)"
            )
    report.print_table(report.read(path), reasons=reasons)
    print(f"\n{args.runs} run(s) of each benchmark; rows kept in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
