"""Sandbox drills: what a drill of 1, 5, 20 and 80 services costs end to end, and how the cost grows.

Each figure is a whole ``drplan drill PLAN --sandbox --approve-all`` in a fresh process (start-up,
the embedded emulator, seeding, preflight, the steps, cleanup, evidence), on generated plans
(benchmarks/generate.py, the default mix: RDS, DynamoDB, EBS, S3, AWS Backup, DNS cut-overs and
checks), each run with an empty state directory (drplan reads the journals of earlier runs in it,
so a shared one would make every run slower than the one before). The figures are **CPU time**
(user + system of the whole process, every thread: drplan's, which run the emulator's code too,
since the sandbox's calls reach it in-process; the loopback server's, for anything else; the
stand-in's): on a shared machine it is the steadier figure; wall time is in the notes.

Rows:

- ``sandbox drill, N services (CPU)``: against the 1-service drill of the same checkout (the fixed
  cost: importing boto3 and moto, starting the emulator, the run's own start-up and evidence);
- ``growth 5 -> 80 services (CPU)``: the 80-service drill over the 5-service drill, target at most
  3x (issue 13);
- ``fixed cost, 1-service drill (CPU)``: with ``DRPLAN_BENCH_BEFORE`` set, against the same drill
  of that checkout, target at most 0.5x (issue 13: halved).

Like for like against another checkout (an earlier commit: ``git worktree add /tmp/before HEAD``):
``DRPLAN_BENCH_BEFORE=/tmp/before python benchmarks/run.py --only sandbox``. Both trees are then
measured in the same run, interleaved run by run (so a load change hits both alike), and the rows
of the other tree are printed too (``before: ...``). ``DRPLAN_BENCH_SOURCE=/path`` measures only
that checkout instead of this one. Each timed command imports drplan from the tree it measures
(``PYTHONPATH`` plus ``PYTHONSAFEPATH``, so that ``python -m`` from the repository root does not
put this checkout first); the benchmark checks that it does before timing anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import Context, Row, Target, Timing

ORDER = 60
TITLE = "sandbox drills of 1, 5, 20 and 80 services: whole process CPU, growth, fixed cost"
SIZES = (1, 5, 20, 80)
GROWTH = (5, 80)


def _plan(ctx: Context, n_services: int) -> Path:
    from generate import generate_plan

    path = ctx.out_dir / f"sandbox-{n_services}.json"
    text = json.dumps(_objectives_every_tree_accepts(generate_plan(n_services)), indent=1)
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
    return path


def _objectives_every_tree_accepts(plan: dict[str, Any]) -> dict[str, Any]:
    """The generated plan with every service's RTO objective set to the plan's own. The generator
    sets each service's RTO from this checkout's prediction (x1.5); another checkout predicts with
    its own scheduling model (an earlier one, without critical-path priority, predicts some services
    back twice as late), refuses the plan (DR301) and its drill exits before anything is measured.
    Every service is back by the time the whole plan is, so the plan's RTO (which both accept)
    holds for each. The steps, hence what a drill does and costs, are the same."""
    plan_rto = plan["objectives"]["rto"]
    for service in plan["services"].values():
        if "objectives" in service:
            service["objectives"]["rto"] = plan_rto
    return plan


def _env(ctx: Context, source: Path | None) -> dict[str, str]:
    env = dict(ctx.env)
    env["PYTHONSAFEPATH"] = "1"  # `python -m` would put the working directory (this checkout) first
    if source is not None:
        env["PYTHONPATH"] = str(source) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _check_imports(ctx: Context, env: dict[str, str], source: Path) -> None:
    """Refuse to time a tree whose drplan is not the one imported."""
    done = subprocess.run(
        [ctx.python, "-c", "import drplan; print(drplan.__file__)"],
        cwd=ctx.root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = Path(done.stdout.strip()).resolve()
    if not imported.is_relative_to(source.resolve()):
        raise RuntimeError(f"timed commands would import drplan from {imported}, not from {source}")


def _drill_once(ctx: Context, plan: Path, env: dict[str, str]) -> Timing:
    state = Path(tempfile.mkdtemp(prefix="sandbox-state-", dir=ctx.out_dir))
    try:
        argv = [ctx.python, "-m", "drplan", "drill", str(plan), "--sandbox", "--approve-all"]
        return ctx.time_command([*argv, "--state-dir", str(state)], repeat=1, env=env, warmup=0)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def _merged(timings: list[Timing]) -> Timing:
    return Timing(
        tuple(r for t in timings for r in t.runs),
        tuple(c for t in timings for c in t.cpu),
        max((t.max_rss_kb for t in timings), default=0),
    )


def _cpu(timing: Timing) -> float:
    return min(timing.cpu) if timing.cpu else timing.best


def _note(timing: Timing) -> str:
    cpus = sorted(timing.cpu)
    runs = f"{len(cpus)} run{'s' if len(cpus) != 1 else ''}"
    spread = f"CPU {cpus[0]:.2f}-{cpus[-1]:.2f} s over {runs}; " if cpus else ""
    rss = f"; rss {timing.max_rss_kb / 1024:.0f} MB" if timing.max_rss_kb else ""
    return f"{spread}wall best {timing.best:.2f} s, median {timing.median:.2f} s{rss}"


def _rows(prefix: str, timings: dict[int, Timing]) -> Iterator[Row]:
    base = timings[SIZES[0]]
    for n in SIZES[1:]:
        yield Row(
            f"{prefix}sandbox drill, {n} services (CPU)",
            _cpu(timings[n]),
            "s",
            baseline=_cpu(base),
            baseline_name="1-service drill",
            note=_note(timings[n]),
        )
    small, large = timings[GROWTH[0]], timings[GROWTH[1]]
    yield Row(
        f"{prefix}growth {GROWTH[0]} -> {GROWTH[1]} services (CPU)",
        _cpu(large) / _cpu(small),
        "x",
        target=Target(max_value=3.0, source="issue 13: cost growth from 5 to 80 services <= 3x"),
        note=f"CPU {_cpu(small):.2f} s -> {_cpu(large):.2f} s (best of each)",
    )


def run(ctx: Context) -> Iterator[Row]:
    repeat = 1 if ctx.quick else min(ctx.repeat, 3)
    chosen = os.environ.get("DRPLAN_BENCH_SOURCE")
    before = os.environ.get("DRPLAN_BENCH_BEFORE")
    trees: dict[str, Path] = {"": Path(chosen) if chosen else ctx.root}
    if before:
        trees["before: "] = Path(before)
    envs = {}
    for prefix, tree in trees.items():
        envs[prefix] = _env(ctx, tree)
        _check_imports(ctx, envs[prefix], tree)
    plans = {n: _plan(ctx, n) for n in SIZES}
    for prefix in trees:  # untimed: bytecode caches, file cache
        _drill_once(ctx, plans[SIZES[0]], envs[prefix])
    runs: dict[str, dict[int, list[Timing]]] = {prefix: {n: [] for n in SIZES} for prefix in trees}
    for i in range(repeat):
        for n in SIZES:
            # Interleaved, so that a change of load hits every tree alike, and in turns first, so
            # that neither always follows the other's largest drill.
            for prefix in list(trees)[:: 1 if i % 2 == 0 else -1]:
                ctx.log(f"  {prefix or 'measured: '}{n} services, run {i + 1} of {repeat} ({trees[prefix]})")
                runs[prefix][n].append(_drill_once(ctx, plans[n], envs[prefix]))
    timings = {
        prefix: {n: _merged(found) for n, found in by_size.items()} for prefix, by_size in runs.items()
    }
    mine = timings[""]
    yield Row(
        "fixed cost, 1-service drill (CPU)",
        _cpu(mine[SIZES[0]]),
        "s",
        baseline=_cpu(timings["before: "][SIZES[0]]) if before else None,
        baseline_name="the same drill, before" if before else "",
        target=Target(max_ratio=0.5, source="issue 13: fixed start-up halved") if before else None,
        note=_note(mine[SIZES[0]]),
    )
    yield from _rows("", mine)
    if before:
        theirs = timings["before: "]
        yield Row(
            "before: fixed cost, 1-service drill (CPU)",
            _cpu(theirs[SIZES[0]]),
            "s",
            note=_note(theirs[SIZES[0]]),
        )
        yield from _rows("before: ", theirs)


if __name__ == "__main__":  # pragma: no cover - run through benchmarks/run.py
    sys.exit("run: python benchmarks/run.py --only sandbox")
