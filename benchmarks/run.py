"""Run drplan's benchmarks and print one table: ``python benchmarks/run.py``.

Discovers ``benchmarks/bench_*.py`` (each exposes ``run(ctx) -> Iterable[Row]``, see
``benchmarks/_common.py`` and ``benchmarks/README.md``), runs them (by their ``ORDER``, then
name), prints every figure as it is measured, then the targets met and missed.

    python benchmarks/run.py                    # everything, plans of 100, 1,000 and 10,000 services
    python benchmarks/run.py --quick            # skip the 10,000-service plan
    python benchmarks/run.py --only validate    # one benchmark (repeatable)
    python benchmarks/run.py --json results.json --fail-on-miss

Exit status: 0; 1 with --fail-on-miss when a target is missed; 2 when a benchmark fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # so benchmarks import _common and generate by name

from _common import TIMES, Context, Row  # noqa: E402

QUICK_SIZES = (100, 1_000)
FULL_SIZES = (100, 1_000, 10_000)


def discover() -> dict[str, ModuleType]:
    """``bench_validate.py`` -> ``{"validate": module}``, ordered by the modules' ``ORDER`` then name."""
    found = {
        path.stem.removeprefix("bench_"): importlib.import_module(path.stem)
        for path in HERE.glob("bench_*.py")
    }
    return dict(sorted(found.items(), key=lambda item: (getattr(item[1], "ORDER", 100), item[0])))


# --- the table --------------------------------------------------------------------------------

COLUMNS = ("bench", "figure", "value", "baseline", "ratio", "target", "met")


def _fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "s":
        if value < 0.1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.3f} s" if value < 100 else f"{value:.0f} s"
    return f"{value:.4g} {unit}"


def _cells(row: Row) -> tuple[str, ...]:
    baseline = ""
    if row.baseline is not None:
        baseline = (
            f"{_fmt_value(row.baseline, row.unit)} ({row.baseline_name})"
            if row.baseline_name
            else _fmt_value(row.baseline, row.unit)
        )
    ratio = f"{row.ratio:.2f}{TIMES}" if row.ratio is not None else ""
    target = row.target.describe(row.unit) if row.target else ""
    met = {True: "yes", False: "NO", None: ""}[row.met]
    return (row.bench, row.name, _fmt_value(row.value, row.unit), baseline, ratio, target, met)


WIDTHS = (9, 42, 9, 28, 7, 19, 3)


def _line(cells: Sequence[str]) -> str:
    return "  ".join(
        cell.ljust(width) if i in (0, 1, 3, 5, 6) else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, WIDTHS, strict=False))
    ).rstrip()


def main(argv: Sequence[str] | None = None) -> int:
    benches = discover()
    parser = argparse.ArgumentParser(description="Run drplan's benchmarks and print a table.")
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-service plan")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help=f"run only this benchmark: {', '.join(benches)}"
    )
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="plan sizes (numbers of services) instead of the defaults"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed runs per figure, best kept (default 5; 3 at 10,000)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, module in benches.items():
            print(f"{name:12} {getattr(module, 'TITLE', '')}")
        return 0
    wanted = {name.removeprefix("bench_").removesuffix(".py") for name in args.only or benches}
    for name in sorted(wanted - set(benches)):
        parser.error(f"no benchmark named {name!r}; choose from {', '.join(benches)}")
    selected = {name: module for name, module in benches.items() if name in wanted}  # in ORDER

    sizes = tuple(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
    ctx = Context(sizes=sizes, repeat=max(1, args.repeat), quick=args.quick)
    print(
        f"# drplan benchmarks at {_revision()}: python {platform.python_version()} on {platform.system()} "
        f"{platform.machine()}, {_cpus()} CPUs (load {_load():.1f}); "
        f"sizes {', '.join(f'{n:,}' for n in sizes)}; best of {ctx.repeat}"
    )
    print(_line(COLUMNS))
    print(_line(["-" * w for w in WIDTHS]), flush=True)
    rows: list[Row] = []
    failed: list[str] = []
    loads = [_load()]
    for name, module in selected.items():
        ctx.log(f"[{name}] {getattr(module, 'TITLE', '')}")
        started = time.perf_counter()
        try:
            for row in module.run(ctx):
                row = dataclasses.replace(row, bench=row.bench or name)
                rows.append(row)
                print(_line(_cells(row)), flush=True)
                if row.note:
                    print(_line(("", f"  {row.note}")), flush=True)
        except Exception:
            failed.append(name)
            ctx.log(f"[{name}] FAILED:\n{traceback.format_exc()}")
        ctx.log(f"[{name}] {time.perf_counter() - started:.0f} s")
        loads.append(_load())

    judged = [r for r in rows if r.met is not None]
    missed = [r for r in judged if not r.met]
    print()
    if judged:
        summary = f"targets: {len(judged) - len(missed)} of {len(judged)} met"
        print(summary + (f"; missed: {', '.join(r.name for r in missed)}" if missed else ""), flush=True)
    else:
        print("targets: none in the benchmarks run", flush=True)
    busiest = max(loads)
    if busiest > _cpus():
        print(
            f"warning: the machine was busy (load average up to {busiest:.1f} on {_cpus()} CPUs); wall-clock "
            "figures are inflated, the CPU times in the notes are closer to what an idle machine gives",
            flush=True,
        )
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)} (see stderr)", flush=True)
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=2) + "\n", encoding="utf-8")
    if failed:
        return 2
    return 1 if (missed and args.fail_on_miss) else 0


def _revision() -> str:
    """The commit measured (``-dirty`` when the working tree has changes), for comparing runs."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=HERE, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "an unknown revision"
    return done.stdout.strip()


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _load() -> float:
    """One-minute load average (0 where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
