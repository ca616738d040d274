"""The scheduling policy, without threads or clocks: which step starts next.

A step becomes ready the moment all its predecessors are done (no wave barriers). Among ready
steps, the one with the least slack against the objectives starts first: the one that must start
soonest for every service it leads to to meet its RTO (:func:`least_slack`); when every service has
the same RTO, or none has one, that is the step with the longest remaining path to the end of the
plan (critical-path priority; ties: plan order). All within a global parallelism bound and
per-group limits (e.g. AWS Backup's concurrent restore jobs). On 1,000 simulated steps at
parallelism 32, with critical-path priority, this finishes within 0.2% of its lower bound (the
larger of the critical path and total work over the parallelism), where wave barriers take 3.3x
(benchmarks/bench_scheduler.py drives this same class through :func:`simulate`).

The runner (:mod:`drplan.engine.runner`) drives a :class:`ReadyQueue` with real steps; the
benchmark drives it with simulated durations. Both see exactly the same decisions.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx

#: Steps a run starts at once unless the plan (``run.parallelism``) or ``--parallelism`` says otherwise.
DEFAULT_PARALLELISM = 16


@dataclass(frozen=True)
class Limits:
    """What bounds a run's concurrency: how many steps at once, and how many of one action at once
    (the AWS quotas an action stands for, e.g. AWS Backup's concurrent restore jobs). The runner
    and the predicted RTO read the same limits, so the prediction models the run that happens."""

    parallelism: int | None = DEFAULT_PARALLELISM
    per_action: Mapping[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """``parallelism 16; aws.backup.restore at most 10 at once``."""
        parts = [f"parallelism {self.parallelism}" if self.parallelism else "no parallelism limit"]
        parts += [f"{name} at most {n} at once" for name, n in sorted(self.per_action.items())]
        return "; ".join(parts)


def limits_for(
    concurrency: Iterable[tuple[str, int | None]],
    *,
    parallelism: int | None = DEFAULT_PARALLELISM,
    overrides: Mapping[str, int] | None = None,
) -> Limits:
    """The limits of a run: each action's own concurrency limit (``(name, limit)`` of the actions the
    run uses), then ``overrides``."""
    per_action = {name: n for name, n in concurrency if n is not None}
    per_action.update(overrides or {})
    return Limits(parallelism, per_action)


def remaining_path(graph: nx.DiGraph, duration: Mapping[str, float]) -> dict[str, float]:
    """For each step: its duration plus the longest chain of durations after it."""
    out: dict[str, float] = {}
    for key in reversed(list(nx.topological_sort(graph))):
        out[key] = duration.get(key, 0.0) + max((out[s] for s in graph.successors(key)), default=0.0)
    return out


def least_slack(
    deadline: Mapping[str, float],
) -> Callable[[nx.DiGraph, Mapping[str, float]], dict[str, float]]:
    """Priority by latest start time, least slack first. ``deadline``: step -> seconds from the
    run's start by which it must be done (its service's RTO). A step must start by the earliest of
    its own deadline and its successors' latest starts, less its duration, so a step feeding a
    tier-1 service inherits that service's urgency. Steps without a deadline come after every
    deadline, among themselves by their remaining path: a plan whose services share one RTO (or
    have none) is scheduled exactly by critical-path priority. Without this, a short tier-1 service
    could wait behind a long tier-3 chain and miss an RTO the run could have met."""

    def priority(graph: nx.DiGraph, duration: Mapping[str, float]) -> dict[str, float]:
        none = sum(duration.values()) + max(deadline.values(), default=0.0) + 1.0
        latest: dict[str, float] = {}
        for key in reversed(list(nx.topological_sort(graph))):
            due = min([deadline.get(key, none), *(latest[s] for s in graph.successors(key))])
            latest[key] = due - duration.get(key, 0.0)
        return {key: -start for key, start in latest.items()}

    return priority


class ReadyQueue:
    """Dependency-driven ready queue by priority (highest first), with concurrency limits."""

    def __init__(
        self,
        graph: nx.DiGraph,
        priority: Mapping[str, float],
        *,
        order: Mapping[str, int] | None = None,
        parallelism: int | None = None,
        group_of: Mapping[str, str | None] | None = None,
        group_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.graph = graph
        self._order = order or {k: i for i, k in enumerate(graph.nodes)}
        self._priority = priority
        self.parallelism = parallelism
        self._group_of = group_of or {}
        self._limits = group_limits or {}
        self._waiting_on = {k: graph.in_degree(k) for k in graph.nodes}
        self._heap: list[tuple[float, int, str]] = []
        self.running: set[str] = set()
        self._running_by_group: Counter[str] = Counter()
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.skipped: dict[str, str] = {}  # step -> the failed/skipped step that caused it
        self.stopped = False
        for key in graph.nodes:
            if self._waiting_on[key] == 0:
                self._push(key)

    def _push(self, key: str) -> None:
        heapq.heappush(self._heap, (-self._priority.get(key, 0.0), self._order[key], key))

    def take(self) -> list[str]:
        """Steps to start now (marked running), highest priority first."""
        if self.stopped:
            return []
        started: list[str] = []
        blocked: list[tuple[float, int, str]] = []
        while self._heap and (self.parallelism is None or len(self.running) < self.parallelism):
            item = heapq.heappop(self._heap)
            key = item[2]
            group = self._group_of.get(key)
            if (
                group is not None
                and group in self._limits
                and self._running_by_group[group] >= self._limits[group]
            ):
                blocked.append(item)
                continue
            self.running.add(key)
            if group is not None:
                self._running_by_group[group] += 1
            started.append(key)
        for item in blocked:
            heapq.heappush(self._heap, item)
        return started

    def _release(self, key: str) -> None:
        self.running.discard(key)
        group = self._group_of.get(key)
        if group is not None:
            self._running_by_group[group] -= 1

    def succeed(self, key: str) -> list[str]:
        """Mark done; returns the steps that just became ready."""
        self._release(key)
        self.done.add(key)
        ready = []
        for successor in self.graph.successors(key):
            self._waiting_on[successor] -= 1
            if self._waiting_on[successor] == 0 and successor not in self.skipped:
                self._push(successor)
                ready.append(successor)
        return ready

    def mark_done(self, key: str) -> None:
        """A step that finished before this queue existed (an earlier process of a resumed run):
        done without being started, so the steps waiting on it can become ready."""
        self._heap = [item for item in self._heap if item[2] != key]
        heapq.heapify(self._heap)
        self.done.add(key)
        for successor in self.graph.successors(key):
            self._waiting_on[successor] -= 1
            if (
                self._waiting_on[successor] == 0
                and successor not in self.skipped
                and successor not in self.done
            ):
                self._push(successor)

    def fail(self, key: str) -> list[str]:
        """Mark failed; everything downstream is skipped. Returns the newly skipped steps."""
        self._release(key)
        self.failed.add(key)
        newly = []
        for downstream in nx.descendants(self.graph, key):
            if (
                downstream not in self.skipped
                and downstream not in self.done
                and downstream not in self.running
            ):
                self.skipped[downstream] = key
                newly.append(downstream)
        if newly:
            drop = set(newly)
            self._heap = [item for item in self._heap if item[2] not in drop]
            heapq.heapify(self._heap)
        return sorted(newly, key=self._order.__getitem__)

    def stop(self) -> None:
        """Start nothing more (Ctrl-C, --fail-fast); running steps finish."""
        self.stopped = True

    def not_started(self) -> list[str]:
        """Steps that never started and were not skipped (after a stop)."""
        seen = self.done | self.failed | self.running | set(self.skipped)
        return [k for k in self.graph.nodes if k not in seen]

    @property
    def idle(self) -> bool:
        """Nothing running and nothing more will start."""
        return not self.running and (self.stopped or not self._heap)


def scheduling_priority(
    deadlines: Mapping[str, float] | None,
) -> Callable[[nx.DiGraph, Mapping[str, float]], dict[str, float]]:
    """How a run ranks its ready steps: least slack against ``deadlines`` (each step's service RTO,
    in seconds), or critical-path priority when every step has the same deadline or none. Also
    what an exported state machine's semaphores rank waiting steps by
    (:mod:`drplan.stepfunctions.export`), so both start the same step when a slot frees."""
    # One RTO for every step (or none): least slack orders as critical-path priority does; use that
    # itself, so float rounding in "deadline - path" never reorders two steps.
    due = deadlines or {}

    def chosen(graph: nx.DiGraph, duration: Mapping[str, float]) -> dict[str, float]:
        differ = bool(due) and (len(set(due.values())) > 1 or any(k not in due for k in graph.nodes))
        return (least_slack(due) if differ else remaining_path)(graph, duration)

    return chosen


def ready_queue(
    graph: nx.DiGraph,
    duration: Mapping[str, float],
    limits: Limits,
    group_of: Mapping[str, str | None],
    *,
    order: Mapping[str, int] | None = None,
    deadlines: Mapping[str, float] | None = None,
    priority: Callable[[nx.DiGraph, Mapping[str, float]], Mapping[str, float]] | None = None,
) -> ReadyQueue:
    """The queue a run is scheduled with: least slack against ``deadlines`` (each step's service
    RTO, in seconds) from the estimates, else critical-path priority; the run's limits. The runner
    and :func:`simulate` (hence the predicted RTO) both build it here."""
    return ReadyQueue(
        graph,
        (priority or scheduling_priority(deadlines))(graph, duration),
        order=order,
        parallelism=limits.parallelism,
        group_of=group_of,
        group_limits=limits.per_action,
    )


@dataclass(frozen=True)
class Schedule:
    """When each step starts and finishes in a simulated run (seconds from the start)."""

    start: Mapping[str, float]
    finish: Mapping[str, float]
    makespan: float


def simulate(
    graph: nx.DiGraph,
    duration: Mapping[str, float],
    *,
    limits: Limits | None = None,
    group_of: Mapping[str, str | None] | None = None,
    order: Mapping[str, int] | None = None,
    deadlines: Mapping[str, float] | None = None,
    priority: Callable[[nx.DiGraph, Mapping[str, float]], Mapping[str, float]] | None = None,
) -> Schedule:
    """Run ``graph`` through the scheduler's own :class:`ReadyQueue` in virtual time: every step
    takes exactly its ``duration``. With ``limits=None`` nothing bounds concurrency, and the
    makespan is the critical path."""
    queue = ready_queue(
        graph,
        duration,
        limits or Limits(None),
        group_of or {},
        order=order,
        deadlines=deadlines,
        priority=priority,
    )
    now = 0.0
    start: dict[str, float] = {}
    finish: dict[str, float] = {}
    finishing: list[tuple[float, int, str]] = []
    position = order or {k: i for i, k in enumerate(graph.nodes)}
    while True:
        for key in queue.take():
            start[key] = now
            heapq.heappush(finishing, (now + duration.get(key, 0.0), position[key], key))
        if not finishing:
            return Schedule(start, finish, now)
        now, _, key = heapq.heappop(finishing)
        finish[key] = now
        queue.succeed(key)


def critical_path_length(graph: nx.DiGraph, duration: Mapping[str, float]) -> float:
    return max(remaining_path(graph, duration).values(), default=0.0)
