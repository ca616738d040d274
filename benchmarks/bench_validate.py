"""Whole-process time of ``drplan validate`` next to ``check-jsonschema`` on the same plans.

Each figure is the best of k fresh processes (startup and imports included: that is what a PR
check pays). The baseline is check-jsonschema checking the same file against the same schema
(schema only: no semantic checks, no graph), run as a whole process too. Targets (issue):

- 1,000 services: at most half check-jsonschema's time, and under 1 s on a 2-core machine;
- 10,000 services: under 5 s.

``python -c pass`` is the floor no Python tool can beat; ``drplan validate`` on a 4-service
example plan shows drplan's fixed cost (imports, schema compilation) against that floor.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

from _common import TIMES, Context, Row, Target, Timing

ORDER = 10  # run.py runs benchmarks by ORDER, then name
TITLE = "drplan validate vs check-jsonschema, whole process, best of k"

TARGETS = {
    1_000: Target(
        max_ratio=0.5, max_value=1.0, source="issue: at most half check-jsonschema's time, under 1 s"
    ),
    10_000: Target(max_value=5.0, source="issue: < 5 s"),
}


def _assert_clean(ctx: Context, drplan: str, path: str) -> None:
    """The generated plan must be valid with no warning, or the timing means nothing."""
    command = [drplan, "validate", "--format", "json", path]
    out = subprocess.run(command, cwd=ctx.root, env=ctx.env, capture_output=True, text=True)
    report = json.loads(out.stdout)
    if report["error_count"] or report["warning_count"]:
        codes = sorted({d["code"] for d in report["diagnostics"]})
        raise AssertionError(
            f"{path}: {report['error_count']} errors, {report['warning_count']} warnings "
            f"({', '.join(codes)}); fix benchmarks/generate.py"
        )


def _cpu_ratio(timing: Timing, baseline: Timing) -> str:
    """The ratio of CPU times: close to the wall-clock one on an idle machine, steadier on a busy one."""
    if timing.best_cpu is None or not baseline.best_cpu:
        return ""
    return f", cpu ratio {timing.best_cpu / baseline.best_cpu:.2f}{TIMES}"


def run(ctx: Context) -> Iterator[Row]:
    drplan = ctx.tool("drplan")
    check_jsonschema = ctx.tool("check-jsonschema")
    schema = ctx.rel(ctx.root / "schemas" / "plan.schema.json")

    floor = ctx.time_command([ctx.python, "-c", "pass"], repeat=max(ctx.repeat, 5))
    yield Row("python -c pass (floor)", floor.best, note=floor.summary())

    example = ctx.rel(ctx.root / "plans" / "status-page.json")
    small = ctx.time_command([drplan, "validate", example])
    yield Row(
        "drplan validate, 4-service example",
        small.best,
        baseline=floor.best,
        baseline_name="python -c pass",
        note=small.summary(),
    )

    for n in ctx.sizes:
        path = ctx.rel(ctx.plan(n))
        repeat = ctx.repeats_for(n)
        ctx.log(f"  checking {path} is clean")
        _assert_clean(ctx, drplan, path)
        ctx.log(f"  check-jsonschema {path} (best of {repeat})")
        baseline = ctx.time_command([check_jsonschema, "--schemafile", schema, path], repeat=repeat)
        yield Row(f"check-jsonschema plan-{n}", baseline.best, note=baseline.summary())
        ctx.log(f"  drplan validate {path} (best of {repeat})")
        timing = ctx.time_command([drplan, "validate", path], repeat=repeat)
        yield Row(
            f"drplan validate plan-{n}",
            timing.best,
            baseline=baseline.best,
            baseline_name="check-jsonschema",
            target=TARGETS.get(n),
            note=timing.summary() + _cpu_ratio(timing, baseline),
        )
