"""``drplan graph`` on big plans: the DOT and Mermaid writers, the whole command, and dot's layout.

Three groups of figures per plan size (run with ``python benchmarks/run.py --only graph``):

- **writers, in-process** (a fresh child process per plan, CPU time of the best of k runs, as in
  bench_stages): ``render_dot`` at both levels and ``render_mermaid``, on a graph compiled and
  analysed beforehand (the ``plan`` row: load + compile + analyse, for scale). Baseline: building
  the same diagram with python-graphviz's ``Digraph`` (the obvious alternative; ~36x slower at
  10,000 services, so it is measured only up to 1,000). Target (issue): DOT of 1,000 services
  written in at most 0.3 s.
- **whole process**: ``drplan graph plan-N -o graph-N.dot`` (default ``--level auto``: one node per
  service above 2,000 steps) and with ``--level steps``, against ``drplan validate plan-N``: the
  ratio is what drawing adds to the validation every graph starts with.
- **dot layout** (when Graphviz is installed, up to 1,000 services): ``dot -Tsvg`` on the DOT the
  writer produced, against the same DOT without the search bounds drplan adds to big graphs
  (``nslimit``, ``nslimit1``, ``mclimit``): the ratio is what the bounds save.

The child entry point (``python benchmarks/bench_graph.py PLAN REPEAT OUT_DIR``) prints JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import Context, Row, Target

ORDER = 40  # run.py runs benchmarks by ORDER, then name
TITLE = "drplan graph: DOT/Mermaid writers vs python-graphviz, whole command vs validate, dot layout"
DOT_TARGET = Target(max_value=0.3, source="issue: DOT for 1,000 services written in <= 0.3 s")
DIGRAPH_UP_TO = 1_000  # python-graphviz baseline only up to this many services (it is slow)
LAYOUT_UP_TO = 1_000  # dot -Tsvg only up to this many services (minutes at 10,000)


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def _digraph_source(view: Any) -> str:
    """The same diagram through python-graphviz (the baseline): clusters, nodes, edges, attributes."""
    import graphviz

    from drplan.render import style

    g = graphviz.Digraph(
        view.name, graph_attr={"rankdir": "LR", "compound": "true", "label": "\n".join(view.title)}
    )
    for cluster in view.clusters:
        tier = style.tier_style(cluster.tier)
        with g.subgraph(name=f"cluster_{cluster.id}") as sub:
            sub.attr(
                label="\n".join(cluster.lines), style="rounded,filled", fillcolor=tier.fill, color=tier.border
            )
            for node in cluster.nodes:
                fam = style.FAMILIES[node.family or style.DEFAULT_FAMILY]
                sub.node(
                    node.id,
                    label="\n".join(node.lines),
                    shape=fam.dot_shape,
                    fillcolor=fam.fill,
                    color=style.CRITICAL if node.critical else fam.border,
                    tooltip=node.tooltip,
                )
    for node in view.nodes:
        g.node(node.id, label="\n".join(node.lines), shape="box", tooltip=node.tooltip)
    for edge in view.edges:
        attrs = {"color": style.CRITICAL} if edge.critical else {}
        if edge.tail_cluster:
            attrs.update(ltail=edge.tail_cluster, lhead=edge.head_cluster or "")
        g.edge(edge.tail, edge.head, **attrs)
    return g.source


def measure(path: Path, repeat: int, out_dir: Path) -> dict[str, Any]:
    """CPU seconds (best of ``repeat``) of each writer on one plan; run in a fresh process."""
    from drplan.actions import registry
    from drplan.graph import analyse, compile_graph
    from drplan.pipeline import load_plan
    from drplan.render import dot
    from drplan.render.dot import render_dot
    from drplan.render.mermaid import render_mermaid
    from drplan.render.view import build_view

    start = time.process_time()
    plan, _ = load_plan(path)
    rg = compile_graph(plan, "recover")
    analysis = analyse(rg, registry())
    out: dict[str, Any] = {
        "plan": time.process_time() - start,
        "services": len(rg.services()),
        "steps": len(rg.graph),
    }
    for level in ("steps", "services"):
        out[f"dot {level}"] = _best(lambda level=level: render_dot(rg, analysis, level=level), repeat)
        text = render_dot(rg, analysis, level=level)
        out[f"dot {level} bytes"] = len(text.encode())
        name = f"graph-{len(plan.services)}-{level}"
        (out_dir / f"{name}.dot").write_text(text, encoding="utf-8")
        unbounded = text.replace(", " + dot.BIG_GRAPH_ATTRIBUTES, "")
        (out_dir / f"{name}-unbounded.dot").write_text(unbounded, encoding="utf-8")
        out[f"dot {level} bounded"] = unbounded != text
    out["mermaid steps"] = _best(lambda: render_mermaid(rg, analysis), repeat)
    if len(plan.services) <= DIGRAPH_UP_TO:
        view = build_view(rg, analysis)
        out["view"] = _best(lambda: build_view(rg, analysis), repeat)
        out["digraph steps"] = _best(lambda: _digraph_source(view), max(1, min(repeat, 3))) + out["view"]
    return out


def run(ctx: Context) -> Iterator[Row]:
    drplan = ctx.tool("drplan")
    dot_binary = shutil.which("dot")
    if dot_binary is None:
        ctx.log("  Graphviz's dot is not installed: no layout figures (apt-get install graphviz)")
    for n in ctx.sizes:
        path = ctx.plan(n)
        repeat = ctx.repeats_for(n)
        ctx.log(f"  writers on {ctx.rel(path)} (best of {repeat})")
        found = ctx.run_child(Path(__file__), str(path), str(repeat), str(ctx.out_dir), what="bench_graph")
        size = f"{found['steps']:,} steps"
        base = found.get("digraph steps")
        base_name = "python-graphviz Digraph" if base is not None else ""
        yield Row(f"{n:>6,}: load + compile + analyse", found["plan"], note=f"{size}, cpu, in-process")
        yield Row(
            f"{n:>6,}: render_dot, steps",
            found["dot steps"],
            baseline=base,
            baseline_name=base_name,
            target=DOT_TARGET if n == 1_000 else None,
            note=f"{found['dot steps bytes'] / 1e6:.1f} MB of DOT, cpu",
        )
        yield Row(
            f"{n:>6,}: render_dot, services",
            found["dot services"],
            note=f"{found['dot services bytes'] / 1e6:.2f} MB of DOT, cpu",
        )
        yield Row(f"{n:>6,}: render_mermaid, steps", found["mermaid steps"], note="cpu")

        ctx.log(f"  drplan graph / validate on {ctx.rel(path)}")
        rel = ctx.rel(path)
        validate = ctx.time_command([drplan, "validate", rel], repeat=repeat)
        for label, extra in (("auto level", []), ("--level steps", ["--level", "steps"])):
            target = ctx.out_dir / f"graph-{n}.dot"
            timing = ctx.time_command([drplan, "graph", rel, "-o", str(target), *extra], repeat=repeat)
            yield Row(
                f"{n:>6,}: drplan graph -o .dot, {label}",
                timing.best,
                baseline=validate.best,
                baseline_name="drplan validate",
                note=timing.summary(),
            )

        if dot_binary is None or n > LAYOUT_UP_TO:
            continue
        for level in ("services", "steps"):
            name = f"graph-{found['services']}-{level}"
            bounded = found[f"dot {level} bounded"]
            layout_repeat = max(1, min(ctx.repeat, 2))
            ctx.log(f"  dot -Tsvg {name}.dot (best of {layout_repeat})")
            mine = ctx.time_command(
                [dot_binary, "-Tsvg", str(ctx.out_dir / f"{name}.dot"), "-o", os.devnull],
                repeat=layout_repeat,
                warmup=0,
            )
            baseline = None
            if bounded:
                baseline = ctx.time_command(
                    [dot_binary, "-Tsvg", str(ctx.out_dir / f"{name}-unbounded.dot"), "-o", os.devnull],
                    repeat=layout_repeat,
                    warmup=0,
                )
            yield Row(
                f"{n:>6,}: dot -Tsvg, {level}",
                mine.best,
                baseline=baseline.best if baseline else None,
                baseline_name="same DOT, no search bounds" if baseline else "",
                note=mine.summary() + ("" if bounded else ", small graph: no bounds added"),
            )


if __name__ == "__main__":
    print(json.dumps(measure(Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))))
