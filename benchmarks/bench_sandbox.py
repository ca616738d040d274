"""Sandbox drills: what a drill of 5, 20 and 80 services costs end to end, and how the cost grows.

Each figure is a whole ``drplan drill PLAN --sandbox`` in a fresh process (start-up, the embedded
emulator, seeding, the steps, cleanup, evidence), on generated plans (benchmarks/generate.py, the
default mix: RDS, DynamoDB, EBS, S3, AWS Backup, DNS cut-overs and checks). The baseline of each row
is a sandbox drill of a 1-service plan measured in the same run: the fixed cost (importing moto,
starting its server, the run's own start-up). CPU time (user + system) is reported next to wall
time; on a shared machine it is the steadier figure.

Rows:

- ``sandbox drill, N services``: wall seconds, against the 1-service drill;
- ``growth 5 -> 80 services``: the 80-service drill's CPU time over the 5-service drill's, target
  at most 3x (a sandbox drill spent half its CPU building boto3 sessions and clients per call,
  which made the cost grow faster than the plan).

To compare with another checkout (an earlier commit, say), run the same benchmark with
``DRPLAN_BENCH_SOURCE=/path/to/checkout``: the timed commands then import drplan from there.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from _common import Context, Row, Target, Timing

ORDER = 60
TITLE = "sandbox drills of 5, 20 and 80 services: whole process, vs a 1-service sandbox drill"
SIZES = (5, 20, 80)


def _plan(ctx: Context, n_services: int) -> Path:
    from generate import generate_plan

    path = ctx.out_dir / f"sandbox-{n_services}.json"
    if not path.exists():
        path.write_text(json.dumps(generate_plan(n_services), indent=1), encoding="utf-8")
    return path


def _drill(ctx: Context, plan: Path, repeat: int) -> Timing:
    env = dict(ctx.env)
    source = os.environ.get("DRPLAN_BENCH_SOURCE")
    if source:
        env["PYTHONPATH"] = source + os.pathsep + env.get("PYTHONPATH", "")
    state = ctx.out_dir / "sandbox-state"
    argv = [
        ctx.python,
        "-m",
        "drplan",
        "drill",
        str(plan),
        "--sandbox",
        "--approve-all",
        "--state-dir",
        str(state),
    ]
    return ctx.time_command(argv, repeat=repeat, env=env, warmup=0)


def run(ctx: Context) -> Iterator[Row]:
    repeat = 1 if ctx.quick else 2
    base = _drill(ctx, _plan(ctx, 1), repeat)
    timings = {}
    for n in SIZES:
        timing = _drill(ctx, _plan(ctx, n), repeat)
        timings[n] = timing
        yield Row(
            f"sandbox drill, {n} services",
            timing.best,
            "s",
            baseline=base.best,
            baseline_name="1-service sandbox drill",
            note=timing.summary(),
        )
    small, large = timings[SIZES[0]], timings[SIZES[-1]]
    growth = (large.best_cpu or 0.0) / small.best_cpu if small.best_cpu else float("nan")
    yield Row(
        f"growth {SIZES[0]} -> {SIZES[-1]} services (CPU time)",
        growth,
        "x",
        target=Target(max_value=3.0, source="issue: cost growth from 5 to 80 services <= 3x"),
        note=f"CPU {small.best_cpu or 0:.1f} s -> {large.best_cpu or 0:.1f} s; the 1-service drill: "
        f"{base.best_cpu or 0:.1f} s (the fixed cost)",
    )


if __name__ == "__main__":  # pragma: no cover - run through benchmarks/run.py
    sys.exit("run: python benchmarks/run.py --only sandbox")
