"""Compile a plan into its recovery graph, and analyse it: waves, critical path, predicted RTO.

One node per step (``service.step``); an edge means "must finish before". Edges come from four
places, and each remembers the JSON pointer that created it, so a cycle can be reported at the
lines that make it:

- ``sequence``: the steps of a service run in order, unless a step sets ``after``;
- ``after``: explicit step dependencies;
- ``depends_on``: a service waits for every step of the services it depends on (edges go from
  the last steps of the dependency to the first steps of the dependent service);
- ``reference``: a ``${service.step.output}`` needs that step's output.

A graph is compiled for one mode (``recover`` or ``drill``) or for all steps (``None``). Steps that
do not run in the mode are removed and their predecessors linked to their successors, so the
order between the remaining steps is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

import networkx as nx

from drplan.diagnostics import join_pointer
from drplan.engine.schedule import DEFAULT_PARALLELISM, Limits, limits_for, simulate
from drplan.model import Mode, Plan, Step

if TYPE_CHECKING:
    from drplan.actions.base import Action

EdgeKind = Literal["sequence", "after", "depends_on", "reference", "bridge"]


@dataclass(frozen=True)
class Why:
    """One reason for an edge."""

    kind: EdgeKind
    pointer: str


@dataclass
class RecoveryGraph:
    plan: Plan
    mode: Mode | None
    graph: nx.DiGraph  # nodes: step keys (attr "step"); edges: attr "why" (list of Why)
    service_graph: nx.DiGraph  # service -> service that depends on it (attr "why")

    def step(self, key: str) -> Step:
        step: Step = self.graph.nodes[key]["step"]
        return step

    def steps(self) -> list[Step]:
        return [data["step"] for _, data in self.graph.nodes(data=True)]

    def reasons(self, upstream: str, downstream: str) -> list[Why]:
        why: list[Why] = self.graph.edges[upstream, downstream]["why"]
        return why

    def deadlines(self) -> dict[str, float]:
        """What the scheduler aims for: each step's service RTO in seconds (the service's own, else
        the plan's); steps of a service without one have none."""
        out: dict[str, float] = {}
        for key, data in self.graph.nodes(data=True):
            rto = self.plan.objectives_of(data["step"].service).rto
            if rto is not None:
                out[key] = rto.total_seconds()
        return out

    def services(self) -> list[str]:
        """Services that have at least one step in this graph, in plan order."""
        present = {data["step"].service for _, data in self.graph.nodes(data=True)}
        return [sid for sid in self.plan.services if sid in present]


def compile_graph(plan: Plan, mode: Mode | None = None) -> RecoveryGraph:
    """Build the step graph of a plan. Unknown names are skipped here (checks report them)."""
    g = nx.DiGraph()
    for step in plan.steps():
        g.add_node(step.key, step=step)

    def link(upstream: str, downstream: str, why: Why) -> None:
        if upstream not in g or downstream not in g:
            return
        if g.has_edge(upstream, downstream):
            g.edges[upstream, downstream]["why"].append(why)
        else:
            g.add_edge(upstream, downstream, why=[why])

    for service in plan.services.values():
        previous: Step | None = None
        for step in service.steps:
            after = step.after_keys()
            if after is None:
                if previous is not None:
                    link(previous.key, step.key, Why("sequence", step.pointer))
            else:
                for i, key in enumerate(after):
                    link(key, step.key, Why("after", join_pointer(step.pointer, "after", i)))
            previous = step

    # Services: first steps wait for last steps (judged on edges inside each service only).
    inner = _inner_ends(plan, g)
    services = nx.DiGraph()
    services.add_nodes_from(plan.services)
    for service in plan.services.values():
        for i, dep in enumerate(service.depends_on):
            if dep not in plan.services:
                continue
            why = Why("depends_on", join_pointer(service.pointer, "depends_on", i))
            services.add_edge(dep, service.id, why=[why])
            for last in inner[dep][1]:
                for first in inner[service.id][0]:
                    link(last, first, why)

    for step in plan.steps():
        for ref in step.references(mode):  # a drill-only reference orders nothing in a recovery
            if ref.step_key != step.key:
                link(ref.step_key, step.key, Why("reference", ref.pointer))
            elif ref.step_key in g:
                g.add_edge(step.key, step.key, why=[Why("reference", ref.pointer)])

    if mode is not None:
        for step in plan.steps():
            if not step.runs_in(mode):
                bypass(g, step.key)
    return RecoveryGraph(plan, mode, g, services)


def _inner_ends(plan: Plan, g: nx.DiGraph) -> dict[str, tuple[list[str], list[str]]]:
    """For each service: (first steps, last steps), judged on edges between its own steps."""
    ends: dict[str, tuple[list[str], list[str]]] = {}
    for service in plan.services.values():
        keys = [s.key for s in service.steps]
        own = set(keys)
        first = [k for k in keys if not any(p in own for p in g.predecessors(k))]
        last = [k for k in keys if not any(s in own for s in g.successors(k))]
        ends[service.id] = (first or keys[:1], last or keys[-1:])
    return ends


def bypass(g: nx.DiGraph, key: str) -> None:
    """Remove a node but keep the order it imposed: its predecessors precede its successors."""
    if key not in g:
        return
    for upstream in list(g.predecessors(key)):
        for downstream in list(g.successors(key)):
            if key in (upstream, downstream) or upstream == downstream:
                continue
            why = Why("bridge", g.edges[upstream, key]["why"][0].pointer)
            if g.has_edge(upstream, downstream):
                g.edges[upstream, downstream]["why"].append(why)
            else:
                g.add_edge(upstream, downstream, why=[why])
    g.remove_node(key)


# --- cycles -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cycle:
    """A dependency cycle: the nodes in order and, for each edge, the pointer that made it."""

    level: Literal["service", "step"]
    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str, Why], ...]


def find_cycles(rg: RecoveryGraph) -> list[Cycle]:
    """One cycle per strongly connected component; services first (they explain step cycles).

    ``is_directed_acyclic_graph`` is cheap, so the common acyclic case costs one pass; only then
    are cycles searched inside each strongly connected component (``find_cycle`` on the whole
    graph can be slow on large plans).
    """
    service_cycles = _cycles(rg.service_graph, "service")
    if service_cycles:
        return service_cycles
    return _cycles(rg.graph, "step")


def _cycles(g: nx.DiGraph, level: Literal["service", "step"]) -> list[Cycle]:
    if nx.is_directed_acyclic_graph(g):
        return []
    found = []
    for component in sorted(nx.strongly_connected_components(g), key=lambda c: min(c)):
        if len(component) == 1:
            (node,) = component
            if not g.has_edge(node, node):
                continue
        start = min(component)
        edges = nx.find_cycle(g.subgraph(component), source=start)
        nodes = tuple(u for u, _ in edges)
        found.append(Cycle(level, nodes, tuple((u, v, g.edges[u, v]["why"][0]) for u, v in edges)))
    return found


# --- analysis -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepTiming:
    key: str
    duration: timedelta
    defaulted: bool  # the action's typical duration was used: the step has no estimate
    wave: int  # 1-based: steps of a wave could all start together
    earliest_start: timedelta  # with nothing but dependencies to wait for (critical-path analysis)
    earliest_finish: timedelta
    latest_start: timedelta
    slack: timedelta
    critical: bool
    start: timedelta  # when the run's scheduler starts it, within the run's limits
    finish: timedelta


@dataclass(frozen=True)
class Analysis:
    """Predicted schedule of a plan in one mode.

    Two figures, because a run has limits: ``critical_rto`` is the critical path (every step at its
    earliest start, as if any number of steps could run at once); ``predicted_rto`` simulates the
    scheduler that really runs, with the run's parallelism and per-action limits (AWS quotas) and
    its priority, least slack against the services' RTOs (:func:`drplan.engine.schedule.simulate`). Objectives are judged on
    ``predicted_rto``; the two are equal when the limits never make a ready step wait.
    """

    mode: Mode | None
    steps: Mapping[str, StepTiming]  # in execution order (topological, plan order between equals)
    waves: tuple[tuple[str, ...], ...]
    critical_path: tuple[str, ...]
    predicted_rto: timedelta  # the whole plan, within the run's limits: when its last step finishes
    critical_rto: timedelta = timedelta(0)  # the whole plan with no limits: the critical path's length
    limits: Limits = field(default_factory=Limits)
    service_rto: Mapping[str, timedelta] = field(default_factory=dict)  # within the limits
    service_critical_rto: Mapping[str, timedelta] = field(default_factory=dict)  # with no limits
    service_paths: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # the chain that decides it

    @property
    def limited(self) -> bool:
        """Do the run's limits make the plan slower than its critical path?"""
        return self.predicted_rto > self.critical_rto

    def service_limited(self, service: str) -> bool:
        return self.service_rto.get(service, _ZERO) > self.service_critical_rto.get(service, _ZERO)


_ZERO = timedelta(0)


def step_duration(
    step: Step, actions: Mapping[str, Action], mode: Mode | None = None
) -> tuple[timedelta, bool]:
    """A step's estimate, or its action's typical duration (second value True) when it has none."""
    if step.estimate is not None:
        return step.estimate, False
    action = actions.get(step.uses)
    if action is None:
        return timedelta(0), True
    try:
        return action.estimate(step.params_for(mode or "recover")), True
    except (ValueError, TypeError, KeyError, OverflowError):
        return action.default_estimate, True


def run_limits(
    plan: Plan,
    actions: Mapping[str, Action],
    *,
    parallelism: int | None = None,
    overrides: Mapping[str, int] | None = None,
) -> Limits:
    """The limits a run of ``plan`` has: ``parallelism`` (``--parallelism``), else the plan's
    ``run.parallelism``, else the default; each action's concurrency limit, then ``overrides``."""
    used = {step.uses for step in plan.steps()}
    concurrency = ((name, actions[name].concurrency) for name in sorted(used) if name in actions)
    chosen = parallelism or plan.run.parallelism or DEFAULT_PARALLELISM
    return limits_for(concurrency, parallelism=chosen, overrides=overrides)


def analyse(rg: RecoveryGraph, actions: Mapping[str, Action], limits: Limits | None = None) -> Analysis:
    """Critical-path analysis of an acyclic recovery graph (check :func:`find_cycles` first), and the
    schedule the run's scheduler would follow within ``limits`` (default: :func:`run_limits`)."""
    g = rg.graph
    limits = limits if limits is not None else run_limits(rg.plan, actions)
    position = {key: i for i, key in enumerate(s.key for s in rg.plan.steps())}
    order = list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
    duration: dict[str, timedelta] = {}
    defaulted: dict[str, bool] = {}
    start: dict[str, timedelta] = {}
    finish: dict[str, timedelta] = {}
    wave: dict[str, int] = {}
    zero = timedelta(0)
    for key in order:
        duration[key], defaulted[key] = step_duration(g.nodes[key]["step"], actions, rg.mode)
        preds = list(g.predecessors(key))
        start[key] = max((finish[p] for p in preds), default=zero)
        finish[key] = start[key] + duration[key]
        wave[key] = 1 + max((wave[p] for p in preds), default=0)
    makespan = max(finish.values(), default=zero)

    latest_finish: dict[str, timedelta] = {}
    for key in reversed(order):
        latest_finish[key] = min(
            (latest_finish[s] - duration[s] for s in g.successors(key)), default=makespan
        )

    def chain_to(end: str) -> tuple[str, ...]:
        """Walk back from ``end`` through the predecessor that finished last (plan order breaks ties)."""
        chain = [end]
        while True:
            preds = [p for p in g.predecessors(chain[-1]) if finish[p] == start[chain[-1]]]
            if not preds:
                break
            chain.append(min(preds, key=position.__getitem__))
        return tuple(reversed(chain))

    last = max(order, key=lambda k: (finish[k], -position[k]), default=None)
    critical = chain_to(last) if last is not None else ()
    on_path = set(critical)

    # The run's own scheduler in virtual time, every step taking its estimate.
    schedule = simulate(
        g,
        {k: d.total_seconds() for k, d in duration.items()},
        limits=limits,
        group_of={k: g.nodes[k]["step"].uses for k in g.nodes},
        order=position,
        deadlines=rg.deadlines(),
    )
    scheduled_start = {k: timedelta(seconds=v) for k, v in schedule.start.items()}
    scheduled_finish = {k: timedelta(seconds=v) for k, v in schedule.finish.items()}

    service_rto: dict[str, timedelta] = {}
    service_critical: dict[str, timedelta] = {}
    service_last: dict[str, str] = {}
    for key in order:
        sid = g.nodes[key]["step"].service
        if sid not in service_critical or finish[key] >= service_critical[sid]:
            service_critical[sid] = finish[key]
            service_last[sid] = key
        service_rto[sid] = max(service_rto.get(sid, zero), scheduled_finish[key])

    timings = {
        key: StepTiming(
            key=key,
            duration=duration[key],
            defaulted=defaulted[key],
            wave=wave[key],
            earliest_start=start[key],
            earliest_finish=finish[key],
            latest_start=latest_finish[key] - duration[key],
            slack=latest_finish[key] - finish[key],
            critical=key in on_path,
            start=scheduled_start[key],
            finish=scheduled_finish[key],
        )
        for key in order
    }
    waves: dict[int, list[str]] = {}
    for key in order:
        waves.setdefault(wave[key], []).append(key)
    in_plan_order = [sid for sid in rg.plan.services if sid in service_rto]
    return Analysis(
        mode=rg.mode,
        steps=timings,
        waves=tuple(tuple(waves[w]) for w in sorted(waves)),
        critical_path=critical,
        predicted_rto=max(scheduled_finish.values(), default=zero),
        critical_rto=makespan,
        limits=limits,
        service_rto={sid: service_rto[sid] for sid in in_plan_order},
        service_critical_rto={sid: service_critical[sid] for sid in in_plan_order},
        service_paths={sid: chain_to(k) for sid, k in service_last.items()},
    )
