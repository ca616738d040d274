"""Where ``drplan validate`` spends its time: each pipeline stage and the slowest checks, in-process.

Each plan is measured in a fresh child process (``python benchmarks/bench_stages.py PLAN``),
with the garbage collector off as in ``drplan.pipeline.validate_file``. Every figure is the best of
k runs of that stage alone, in CPU time of the process (``time.process_time``: other processes on a
busy machine do not inflate it), compared with ``json.loads`` of the same file in the same process
(ratio = "costs as much as parsing the plan N times"). Stages:

- read: ``read_document`` (bytes, sha256, UTF-8, JSON with the duplicate-key hook);
- schema: ``validate_schema`` (compiled jsonschema_rs validator, already built);
- model: ``build_plan``;
- graph / graph (recover): ``compile_graph`` for all steps and for the recover mode;
- checks: all of ``drplan.checks.CHECKS`` with both graphs already built, then the three slowest;
- has_path: ``undeclared_dependencies``'s ``nx.has_path`` on every reference (the count is in the note).

This module reads drplan internals (``CheckContext``, ``CHECKS``, ``_declared_order``); when those
change, update it here. No target: these figures explain the whole-process ones in bench_validate.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import Context, Row

ORDER = 20  # run.py runs benchmarks by ORDER, then name
TITLE = "drplan validate stage by stage, in-process, vs json.loads of the same plan"
SLOWEST_CHECKS = 3


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def measure(path: Path, repeat: int) -> dict[str, Any]:
    """Seconds per stage (best of ``repeat``) for one plan; run in a fresh process."""
    gc.disable()
    from drplan import checks
    from drplan.actions import registry
    from drplan.document import read_document
    from drplan.graph import compile_graph
    from drplan.model import build_plan
    from drplan.schema import is_valid, validate_schema

    text = path.read_text(encoding="utf-8")
    actions = registry()
    out: dict[str, Any] = {"json.loads": _best(lambda: json.loads(text), repeat)}
    doc = read_document(path)
    is_valid(doc.data)  # compile the schema validator outside the timings
    out["read"] = _best(lambda: read_document(path), repeat)
    out["schema"] = _best(lambda: validate_schema(doc.data, str(path)), repeat)
    out["model"] = _best(lambda: build_plan(doc.data, path=str(path)), repeat)
    plan = build_plan(doc.data, path=str(path))
    out["graph"] = _best(lambda: compile_graph(plan), repeat)
    out["graph (recover)"] = _best(lambda: compile_graph(plan, "recover"), repeat)

    def context() -> checks.CheckContext:
        ctx = checks.CheckContext(plan, actions, str(path))
        ctx.graph, ctx.recover_graph, ctx.step_keys  # noqa: B018 - built outside the timings
        return ctx

    per_check: dict[str, float] = {}
    for check in checks.CHECKS:
        best = float("inf")
        for _ in range(repeat):
            ctx = context()
            start = time.process_time()
            found = list(check(ctx))
            best = min(best, time.process_time() - start)
        if found:
            raise AssertionError(
                f"{path}: {check.__name__} found {len(found)} problems; the plan must be clean"
            )
        per_check[check.__name__] = best
    out["checks"] = sum(per_check.values())
    out["per_check"] = per_check

    ctx = context()
    pairs = [
        (ref.step_key, step.key)
        for step in plan.steps()
        for ref in step.references()
        if ref.step_key != step.key and ref.step_key in ctx.step_keys
    ]
    before = checks._declared_order(ctx)
    out["has_path"] = _best(lambda: [before(u, v) for u, v in pairs], repeat)
    out["has_path_calls"] = len(pairs)
    return out


def run(ctx: Context) -> Iterator[Row]:
    for n in ctx.sizes:
        path = ctx.plan(n)
        repeat = ctx.repeats_for(n)
        ctx.log(f"  stages of {ctx.rel(path)} (best of {repeat})")
        found = ctx.run_child(Path(__file__), str(path), str(repeat), what="bench_stages")
        base = found["json.loads"]

        def row(name: str, value: float, note: str = "", n: int = n, base: float = base) -> Row:
            return Row(f"{n:>6,}: {name}", value, baseline=base, baseline_name="json.loads", note=note)

        for stage in ("read", "schema", "model", "graph", "graph (recover)", "checks"):
            yield row(stage, found[stage])
        slowest = sorted(found["per_check"].items(), key=lambda item: -item[1])[:SLOWEST_CHECKS]
        for name, seconds in slowest:
            yield row(f"  check {name}", seconds)  # two spaces: part of "checks"
        calls = found["has_path_calls"]
        per_call = found["has_path"] / calls * 1e6 if calls else 0.0
        yield row(
            "  nx.has_path, all references", found["has_path"], f"{calls} calls, {per_call:.1f} µs each"
        )


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 3)))
