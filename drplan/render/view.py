"""What a diagram shows, independent of its syntax: clusters, nodes, edges, title, legend.

Both writers (:mod:`drplan.render.dot`, :mod:`drplan.render.mermaid`) turn the same
:class:`View` into text, so a DOT and a Mermaid diagram of a plan always agree. Everything is
ordered by the plan's own order (services as written, steps as written; edges by the position
of their tail, then of their head), never by hash or dict order of the graph library, so the same
plan gives byte-identical output on every run.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from drplan.durations import humanize as _humanize
from drplan.graph import RecoveryGraph, Why
from drplan.render.style import DEFAULT_FAMILY, FAMILIES, EdgeKind

if TYPE_CHECKING:
    from drplan.graph import Analysis
    from drplan.model import Plan, Step

Level = Literal["steps", "services"]
LEVELS: tuple[Level, ...] = ("steps", "services")
LABEL_WIDTH = 26  # step names are wrapped to this many characters per line

#: Durations repeat a lot in a big plan (estimates in whole minutes): format each value once.
humanize = lru_cache(maxsize=4096)(_humanize)


@dataclass(frozen=True)
class Node:
    id: str  # a plan key: "service.step" (steps level) or "service" (services level)
    lines: tuple[str, ...]
    critical: bool
    tooltip: str
    family: str | None = None  # steps level: the action family
    tier: int | None = None  # services level: the service's tier


@dataclass(frozen=True)
class Cluster:
    id: str  # the service id
    lines: tuple[str, ...]
    tier: int | None
    missed: bool  # predicted RTO over the objective
    tooltip: str
    nodes: tuple[Node, ...]
    #: The Region all the service's steps run in, when the plan spans several: the diagram draws
    #: the plan's Regions as clusters around their services. None: one Region, or a service in two.
    region: str | None = None


@dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    kind: EdgeKind
    critical: bool
    tail_cluster: str | None = None  # steps level, "depends" edges: clip at the clusters
    head_cluster: str | None = None


@dataclass(frozen=True)
class View:
    name: str  # the plan name
    level: Level
    title: tuple[str, ...]
    clusters: tuple[Cluster, ...]  # steps level
    nodes: tuple[Node, ...]  # services level
    edges: tuple[Edge, ...]
    families: tuple[str, ...]  # present, in legend order
    tiers: tuple[int | None, ...]  # present, sorted (None last)
    critical: bool  # something is on the critical path
    #: (Region, label) of each Region cluster, in plan order: only when the plan spans several.
    regions: tuple[tuple[str, str], ...] = ()


def build_view(
    rg: RecoveryGraph,
    analysis: Analysis,
    *,
    level: str = "steps",
    sha256: str = "",
    generated: str | None = None,
) -> View:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    title = _title(rg, analysis, sha256 or rg.plan.sha256, generated)
    if level == "services":
        return _services_view(rg, analysis, title)
    return _steps_view(rg, analysis, title)


# --- title and labels -----------------------------------------------------------------------------


def _title(rg: RecoveryGraph, analysis: Analysis, sha256: str, generated: str | None) -> tuple[str, ...]:
    plan = rg.plan
    first = f"{plan.name} · drplan format {plan.format_version}"
    if sha256:
        first += f" · sha256 {sha256[:12]}"
    mode = {"recover": "recovery", "drill": "drill", None: "all steps"}[rg.mode]
    focus = getattr(rg, "focus", None)
    if focus:
        rto = plan.objectives_of(focus).rto
        second = (
            f"{focus} and everything upstream · {mode} · predicted RTO {humanize(analysis.predicted_rto)}"
        )
    else:
        rto = plan.objectives.rto
        second = f"{mode} · predicted RTO {humanize(analysis.predicted_rto)}"
    if rto is not None:
        second += f" (objective {humanize(rto)})"
    lines = [first, second]
    if generated:
        lines.append(f"generated {generated}")
    return tuple(lines)


def _service_lines(plan: Plan, sid: str, predicted: timedelta | None) -> tuple[tuple[str, ...], bool]:
    service = plan.services[sid]
    head = sid if service.tier is None else f"{sid} · tier {service.tier}"
    objectives = plan.objectives_of(sid)
    parts = []
    if objectives.rto is not None:
        parts.append(f"RTO {humanize(objectives.rto)}")
    if predicted is not None:
        parts.append(f"predicted {humanize(predicted)}")
    if objectives.rpo is not None:
        parts.append(f"RPO {humanize(objectives.rpo)}")
    missed = objectives.rto is not None and predicted is not None and predicted > objectives.rto
    return ((head, " · ".join(parts)) if parts else (head,)), missed


def _step_lines(step: Step, duration: timedelta | None, defaulted: bool) -> tuple[str, ...]:
    title = step.title
    if 0 < len(title) <= LABEL_WIDTH and title.isprintable() and title.strip() == title:
        lines = [title]  # the common case, without textwrap's cost
    else:
        lines = textwrap.wrap(title, LABEL_WIDTH, break_on_hyphens=False) or [step.id]
    meta = []
    if duration is not None:
        meta.append(("~" if defaulted else "") + humanize(duration))
    if step.only:
        meta.append(f"{step.only} only")
    if meta:
        lines.append(" · ".join(meta))
    return tuple(lines)


def _families() -> Mapping[str, str]:
    from drplan.actions import registry

    return {name: action.family for name, action in registry().items()}


# --- steps level ----------------------------------------------------------------------------------


def _steps_view(rg: RecoveryGraph, analysis: Analysis, title: tuple[str, ...]) -> View:
    plan, g = rg.plan, rg.graph
    families = _families()
    on_path = set(analysis.critical_path)
    present_families: set[str] = set()
    clusters = []
    for sid in rg.services():
        nodes = []
        for step in plan.services[sid].steps:
            if step.key not in g:
                continue
            timing = analysis.steps.get(step.key)
            family = families.get(step.uses, DEFAULT_FAMILY)
            present_families.add(family)
            tooltip = f"{step.key} · {step.uses}"
            if timing is not None:
                tooltip += f" · starts at {humanize(timing.earliest_start)} · slack {humanize(timing.slack)}"
            if step.description:
                tooltip += f"\n{step.description}"
            nodes.append(
                Node(
                    id=step.key,
                    lines=_step_lines(
                        step, timing.duration if timing else None, bool(timing and timing.defaulted)
                    ),
                    critical=step.key in on_path,
                    tooltip=tooltip,
                    family=family,
                )
            )
        lines, missed = _service_lines(plan, sid, analysis.service_rto.get(sid))
        service = plan.services[sid]
        clusters.append(Cluster(sid, lines, service.tier, missed, service.description or sid, tuple(nodes)))
    clusters, regions = _in_regions(rg, clusters)

    position = {step.key: i for i, step in enumerate(plan.steps())}
    critical_edges = set(pairwise(analysis.critical_path))
    edges = []
    for tail, head, data in g.edges(data=True):
        if tail == head:
            continue
        tail_sid, head_sid = g.nodes[tail]["step"].service, g.nodes[head]["step"].service
        kind = _edge_kind(data["why"], tail_sid != head_sid)
        depends = kind == "depends"
        edges.append(
            Edge(
                tail,
                head,
                kind,
                (tail, head) in critical_edges,
                f"cluster_{tail_sid}" if depends else None,
                f"cluster_{head_sid}" if depends else None,
            )
        )
    edges.sort(key=lambda e: (position[e.tail], position[e.head]))
    tiers = {c.tier for c in clusters}
    return View(
        name=plan.name,
        level="steps",
        title=title,
        clusters=tuple(clusters),
        nodes=(),
        edges=tuple(edges),
        families=tuple(f for f in FAMILIES if f in present_families),
        tiers=_sorted_tiers(tiers),
        critical=bool(on_path),
        regions=regions,
    )


def _in_regions(
    rg: RecoveryGraph, clusters: list[Cluster]
) -> tuple[list[Cluster], tuple[tuple[str, str], ...]]:
    """The clusters with the Region each service runs in, and the Regions' labels (``us-west-2
    (recovery)`` with the plan's own name for it), when the steps drawn run in more than one
    Region. A service whose steps run in two Regions stays outside the Region clusters."""
    plan = rg.plan
    per_service: dict[str, set[str]] = {}
    for cluster in clusters:
        steps = [s for s in plan.services[cluster.id].steps if s.key in rg.graph]
        per_service[cluster.id] = {r for s in steps if (r := s.region or plan.aws.region)}
    seen = [r for c in clusters for r in sorted(per_service[c.id])]
    order = list(dict.fromkeys(seen))
    if len(order) < 2:
        return clusters, ()
    names = {region: name for name, region in plan.regions.items()}
    labels = tuple((r, f"{r} ({names[r]})" if r in names else r) for r in order)
    placed = [
        dataclasses.replace(c, region=next(iter(per_service[c.id]))) if len(per_service[c.id]) == 1 else c
        for c in clusters
    ]
    return placed, labels


def _edge_kind(reasons: list[Why], across: bool) -> EdgeKind:
    """``data`` when only ``${references}`` make the edge; ``depends`` for service dependencies."""
    kinds = {w.kind for w in reasons}
    if kinds == {"reference"}:
        return "data"
    if not across:
        return "sequence"
    from_depends_on = any(
        w.kind == "depends_on" or (w.kind == "bridge" and "/depends_on/" in w.pointer) for w in reasons
    )
    return "depends" if from_depends_on else "sequence"


def _sorted_tiers(tiers: set[int | None]) -> tuple[int | None, ...]:
    return tuple(sorted(t for t in tiers if t is not None)) + ((None,) if None in tiers else ())


# --- services level -------------------------------------------------------------------------------


def _services_view(rg: RecoveryGraph, analysis: Analysis, title: tuple[str, ...]) -> View:
    plan, g = rg.plan, rg.graph
    services = rg.services()
    counts: dict[str, int] = dict.fromkeys(services, 0)
    for key in g:
        counts[g.nodes[key]["step"].service] += 1
    chain: list[str] = []
    for key in analysis.critical_path:
        sid = g.nodes[key]["step"].service if key in g else key.partition(".")[0]
        if not chain or chain[-1] != sid:
            chain.append(sid)
    on_path = set(chain)
    critical_edges = set(pairwise(chain))

    nodes = []
    for sid in services:
        lines, _missed = _service_lines(plan, sid, analysis.service_rto.get(sid))
        n = counts[sid]
        service = plan.services[sid]
        nodes.append(
            Node(
                id=sid,
                lines=(*lines, f"{n} step{'s' if n != 1 else ''}"),
                critical=sid in on_path,
                tooltip=service.description or sid,
                tier=service.tier,
            )
        )

    kinds: dict[tuple[str, str], EdgeKind] = {}
    for tail, head, data in g.edges(data=True):
        pair = (g.nodes[tail]["step"].service, g.nodes[head]["step"].service)
        if pair[0] == pair[1]:
            continue
        kind: EdgeKind = "data" if {w.kind for w in data["why"]} == {"reference"} else "depends"
        if kinds.get(pair) != "depends":
            kinds[pair] = kind
    position = {sid: i for i, sid in enumerate(plan.services)}
    edges = [
        Edge(tail, head, kind, (tail, head) in critical_edges)
        for (tail, head), kind in sorted(
            kinds.items(), key=lambda item: (position[item[0][0]], position[item[0][1]])
        )
    ]
    return View(
        name=plan.name,
        level="services",
        title=title,
        clusters=(),
        nodes=tuple(nodes),
        edges=tuple(edges),
        families=(),
        tiers=_sorted_tiers({plan.services[sid].tier for sid in services}),
        critical=bool(on_path),
    )


# --- focus ----------------------------------------------------------------------------------------


@dataclass
class FocusedGraph(RecoveryGraph):
    """A recovery graph cut to one service and its upstream (see :func:`focus_graph`)."""

    focus: str = ""


def focus_graph(rg: RecoveryGraph, analysis: Analysis, service: str) -> tuple[RecoveryGraph, Analysis]:
    """One service and everything upstream of it (every step its steps wait for, in any service).

    The returned graph carries a ``focus`` attribute (the writers put it in the title) and the
    analysis is the plan's, cut to those steps, with the chain that decides the service's
    predicted RTO as the critical path. Upstream timings do not depend on what comes after them,
    so they are the same as in the whole plan.
    """
    import networkx as nx

    from drplan.errors import UsageError

    if service not in rg.plan.services:
        raise UsageError(f"unknown service {service!r}")
    own = [s.key for s in rg.plan.services[service].steps if s.key in rg.graph]
    if not own:
        mode = rg.mode or "any"
        raise UsageError(f"service {service!r} has no steps in {mode} mode")
    keep = set(own)
    for key in own:
        keep |= nx.ancestors(rg.graph, key)
    graph = rg.graph.subgraph(keep).copy()
    present = {rg.graph.nodes[k]["step"].service for k in keep}
    focused = FocusedGraph(rg.plan, rg.mode, graph, rg.service_graph.subgraph(present).copy(), focus=service)
    waves = tuple(w for w in (tuple(k for k in wave if k in keep) for wave in analysis.waves) if w)
    cut = replace(
        analysis,
        steps={k: t for k, t in analysis.steps.items() if k in keep},
        waves=waves,
        critical_path=analysis.service_paths.get(service, ()),
        predicted_rto=analysis.service_rto.get(service, timedelta(0)),
        service_rto={s: t for s, t in analysis.service_rto.items() if s in present},
        service_paths={s: p for s, p in analysis.service_paths.items() if s in present},
    )
    return focused, cut
