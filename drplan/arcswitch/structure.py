"""The recovery graph as ARC's structure: a sequence of stages, each one block or one Parallel block.

**What ARC can express.** A workflow is a list of steps run one after the other; a Parallel block
runs its sub-steps side by side and ends when the last one ends. There is no sequence inside a
Parallel block (a sub-step is a single block, or another Parallel block, which adds nothing), so
a chain cannot run beside another step: the only structures are *stages*, sets of steps none of
which waits for another, run one stage after the other. (A child plan, ``ARCRegionSwitchPlan``,
could hold a chain inside a Parallel block, at the price of a separate ARC plan per chain; the
exporter does not split plans.)

**Its cost.** A stage ends when its longest step ends, so the ARC plan takes the sum, over the
stages, of each stage's longest estimate; drplan's scheduler starts a step the moment its own
predecessors are done, and takes the critical path (within its parallelism). Any graph with a
chain beside something else costs more in stages: an N (a->c, b->c, b->d) makes d wait for a, and
even two independent chains x1->x2, y1->y2 make x2 wait for y1.

**Choosing the stages** (:func:`stages`). Every step must be in a later stage than each of its
predecessors; within that, which stage a step joins changes the sum. Finding the best assignment
is a hard combinatorial problem in general, so this is a heuristic, deterministic and cheap:

1. two starting points: every step in its earliest stage (longest chain of predecessors, "as soon
   as possible"), and every step in its latest (as late as its successors allow);
2. from each, repeatedly move single steps to the stage within their window (after their last
   predecessor, before their first successor) that lowers the sum most, until no move helps;
3. keep the cheaper result (the earliest-stage one on a tie), and drop empty stages.

The critical path is a lower bound on any stage structure; the report shows both figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx

from drplan.engine.schedule import Limits, critical_path_length, simulate

Stages = tuple[tuple[str, ...], ...]


def restrict(graph: nx.DiGraph, keep: Iterable[str]) -> nx.DiGraph:
    """The order among the ``keep`` steps as ``graph`` gives it: a path through steps that are not
    kept still orders two kept ones. Transitively reduced, nodes in ``graph``'s order."""
    kept = set(keep)
    out = nx.DiGraph()
    out.add_nodes_from(k for k in graph.nodes if k in kept)
    for key in out.nodes:
        out.add_edges_from((key, later) for later in nx.descendants(graph, key) if later in kept)
    reduced = nx.transitive_reduction(out)
    ordered = nx.DiGraph()
    ordered.add_nodes_from(out.nodes)
    ordered.add_edges_from(reduced.edges)
    return ordered


def cost(stages: Stages, duration: Mapping[str, float]) -> float:
    """How long the stages take, one after the other: the sum of each stage's longest step."""
    return sum(max(duration.get(k, 0.0) for k in stage) for stage in stages if stage)


def stages(graph: nx.DiGraph, duration: Mapping[str, float], order: Mapping[str, int]) -> Stages:
    """The stages (each in plan order) for an acyclic ``graph``; see the module's docstring."""
    if graph.number_of_nodes() == 0:
        return ()
    topo = list(nx.lexicographical_topological_sort(graph, key=order.__getitem__))
    earliest: dict[str, int] = {}
    for key in topo:
        earliest[key] = 1 + max((earliest[p] for p in graph.predecessors(key)), default=0)
    depth = max(earliest.values())
    latest: dict[str, int] = {}
    for key in reversed(topo):
        latest[key] = min((latest[s] for s in graph.successors(key)), default=depth + 1) - 1
    best: Stages | None = None
    for start in (earliest, latest):
        found = _grouped(_improved(graph, topo, dict(start), depth, duration), order)
        if best is None or cost(found, duration) < cost(best, duration) - 1e-9:
            best = found
    assert best is not None
    return best


def _improved(
    graph: nx.DiGraph, topo: list[str], level: dict[str, int], depth: int, duration: Mapping[str, float]
) -> dict[str, int]:
    """Single-step moves that lower the sum of the stages' longest steps, until none does."""
    members: dict[int, list[str]] = {n: [] for n in range(1, depth + 1)}
    for key in topo:
        members[level[key]].append(key)

    def longest(n: int, without: str | None = None, plus: str | None = None) -> float:
        values = [duration.get(k, 0.0) for k in members[n] if k != without]
        if plus is not None:
            values.append(duration.get(plus, 0.0))
        return max(values, default=0.0)

    for _ in range(len(topo) * depth + 1):  # every move lowers the sum: this bound is never reached
        moved = False
        for key in topo:
            low = 1 + max((level[p] for p in graph.predecessors(key)), default=0)
            high = min((level[s] for s in graph.successors(key)), default=depth + 1) - 1
            here = level[key]
            saved = longest(here) - longest(here, without=key)
            gain, target = 0.0, here
            for n in range(low, high + 1):
                if n == here:
                    continue
                delta = longest(n, plus=key) - longest(n) - saved
                if delta < gain - 1e-9:
                    gain, target = delta, n
            if target != here:
                members[here].remove(key)
                members[target].append(key)
                level[key] = target
                moved = True
        if not moved:
            break
    return level


def _grouped(level: Mapping[str, int], order: Mapping[str, int]) -> Stages:
    by_level: dict[int, list[str]] = {}
    for key, n in level.items():
        by_level.setdefault(n, []).append(key)
    return tuple(tuple(sorted(by_level[n], key=order.__getitem__)) for n in sorted(by_level))


@dataclass(frozen=True)
class Makespan:
    """One graph's predicted duration three ways, with the same step estimates (seconds)."""

    steps: int
    drplan: float  # drplan's own scheduler, within the plan's limits (what `drplan plan` predicts)
    critical: float  # the critical path: no structure of stages can be faster
    arc: float  # ARC's stages, one after the other
    stages: Stages

    @property
    def extra(self) -> float:
        return self.arc - self.drplan


def makespan(
    graph: nx.DiGraph,
    duration: Mapping[str, float],
    order: Mapping[str, int],
    *,
    limits: Limits | None = None,
    group_of: Mapping[str, str | None] | None = None,
) -> Makespan:
    chosen = stages(graph, duration, order)
    schedule = simulate(graph, duration, limits=limits, group_of=group_of, order=order)
    return Makespan(
        steps=graph.number_of_nodes(),
        drplan=schedule.makespan,
        critical=critical_path_length(graph, duration),
        arc=cost(chosen, duration),
        stages=chosen,
    )
