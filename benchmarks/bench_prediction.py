"""The predicted RTO against the run it predicts: drplan's real runner, driven in virtual time.

What is compared, on a generated 1,000-service plan where 80% of the data stores are
``aws.backup.restore`` steps (``generate_plan(1000, backup_share=0.8)``; rows 1 and 3 again on the
default mix, ``plan-1000.json``), in ``recover`` mode, with the run's default limits (parallelism
16; ``aws.backup.restore`` at most 10 at once; ``aws.dynamodb.restore_backup`` at most 50):

- **predicted** is ``analyse(prepared.graph, registry(), prepared.limits).predicted_rto``, exactly
  what ``drplan plan`` and the evidence show (and what ``drplan validate`` gates DR301/DR302 on: the
  benchmark checks that ``analyse(compile_graph(plan, "recover"), registry())`` gives the same).
- **runner** is :class:`drplan.engine.runner.Runner` itself (its main loop, its worker threads,
  :class:`~drplan.engine.worker.StepDriver`'s polling with back-off, reference resolution, records,
  events) on the prepared plan, with every step's action replaced by a simulated one of the same
  name (so the per-action limits apply): ``start`` notes when the job will be done, ``poll`` says
  "running" until then, ``result`` returns the outputs other steps reference. Time is virtual
  (:class:`VirtualTime`): every wait of the engine (``Stop.wait``) sleeps on a virtual clock, and
  the clock jumps to the next wake-up only when every worker is asleep and the main loop is waiting
  on its inbox with nothing in it, so a step that becomes ready starts at the virtual instant it
  does in a real run. The makespan is ``RunOutcome.finished - RunOutcome.started``.

Rows:

1. predicted vs runner with every step taking exactly its estimate: target 0.95-1.05x. The runner
   is expected to be a little slower, because a real run notices a job's end only at its next poll
   (polls back off from 5 s to at most a minute) while the prediction counts the bare estimate; the
   note re-runs ``simulate`` with each step lasting until that poll (:func:`noticed_after`), which
   tells whether the gap is that latency alone or a different schedule.
2. the same with noisy durations: each step (but ``wait``) takes estimate x lognormal(0, 0.3)
   (median: the estimate; mean: 1.046x), seeded; the prediction still uses the estimates. Step
   timeouts are lifted so that noise never fails a step (this measures scheduling, not failures).
   Information, no target: the ratio is the median over seeds (3 with ``--quick``, else 5), the
   note gives each seed, and how closely ``simulate`` fed the durations the runner observed
   reproduces the runner (same decisions, or not).
3. the critical path (``critical_rto``: no limits) against the prediction within the limits, on
   the same plan: why DR301/DR302 judge the limited figure.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import random
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from _common import TIMES, Context, Row, Target

if TYPE_CHECKING:
    from drplan.engine.prepare import Prepared
    from drplan.model import Plan

ORDER = 55
TITLE = "predicted RTO (analyse) vs drplan's real runner in virtual time, 1,000 services, AWS Backup-heavy"
SERVICES = 1_000
BACKUP_SHARE = 0.8  # of data stores: AWS Backup restores (the quota-bound case)
NOISE_SIGMA = 0.3
NOISE_SEEDS = (1, 2, 3, 4, 5)
STALL_SECONDS = 120.0  # real seconds without progress before the virtual clock gives up (a bug)


@dataclass(frozen=True)
class RatioWithin(Target):
    """A two-sided ratio target (``min_ratio`` <= value / baseline <= ``max_ratio``): a prediction
    must be neither optimistic nor pessimistic. ``_common.Target`` only has upper bounds."""

    min_ratio: float | None = None

    def met(self, row: Row) -> bool | None:
        upper = super().met(row)
        if upper is None or row.ratio is None:
            return None
        return upper and (self.min_ratio is None or row.ratio >= self.min_ratio)

    def describe(self, unit: str) -> str:
        return f"{self.min_ratio:g}-{self.max_ratio:g}{TIMES}"


# --- virtual time for the real runner ---------------------------------------------------------


class VirtualTime:
    """A clock shared by the runner's main loop and its worker threads, advanced only when all of
    them are waiting, so the run's decisions happen at the virtual instants they would in real time.

    It stands in for three things of one :class:`~drplan.engine.runner.Runner`: its ``clock``, its
    ``stop.wait`` (the only way the engine sleeps while a step runs) and its ``_inbox`` (where
    workers report back; the main loop blocks there between events). ``busy`` counts worker threads
    that are running code; the main thread raises it before it starts a worker, a worker lowers it
    when it goes to sleep or reports back, and whoever wakes a sleeper raises it for it.

    When ``busy`` is 0, the inbox is empty and the main loop waits, nothing more can happen at
    ``now``: the earliest sleeper wakes (the clock jumps to its time if later). One sleeper at a
    time, earliest first, then plan order: two steps that end at the same instant are seen by the
    main loop one after the other, each followed by its ``take()``, as :func:`simulate` does, and
    the run is deterministic (threads woken together would report in whatever order the OS runs
    them). A sleeper's step is read from its thread's name (the runner names them ``step:<key>``).
    """

    def __init__(self, position: Mapping[str, int]) -> None:
        self.now = 0.0
        self.jumps = 0  # times the clock moved forward
        self.wakeups = 0
        self._position = position
        self._lock = threading.Lock()
        self._busy = 0
        self._sleepers: list[tuple[float, int, int, threading.Event]] = []
        self._seq = itertools.count()
        self._items: deque[Any] = deque()
        self._main_waiting = False
        self._main_wake = threading.Event()
        self._stalled: str | None = None

    def clock(self) -> float:
        return self.now

    def launched(self) -> None:
        """The main thread is about to start a worker thread (counted before it exists, so the
        clock cannot move between ``Thread.start`` and the worker's first line)."""
        with self._lock:
            self._busy += 1

    def sleep(self, seconds: float) -> bool:
        """``Stop.wait``: sleep ``seconds`` of virtual time; False (never stopped)."""
        if seconds <= 0:
            return False
        wake = threading.Event()
        step = threading.current_thread().name.removeprefix("step:")
        rank = self._position.get(step, len(self._position))
        with self._lock:
            heapq.heappush(self._sleepers, (self.now + seconds, rank, next(self._seq), wake))
            self._busy -= 1
            self._advance_if_quiet()
        if not wake.wait(STALL_SECONDS):
            raise RuntimeError("virtual time stalled: a worker was never woken")
        return False

    # The runner's inbox (queue.Queue's put and get, as the runner uses them).

    def put(self, item: Any) -> None:
        """A worker reports back: its last act, so it stops counting as busy."""
        with self._lock:
            self._items.append(item)
            self._busy -= 1
            self._main_wake.set()

    def get(self, timeout: float | None = None) -> Any:
        """The main loop waits for a worker's report; the clock moves while it waits (``timeout``
        is the runner's real-time tick for noticing signals: meaningless here, ignored)."""
        while True:
            with self._lock:
                if self._items:
                    self._main_waiting = False
                    return self._items.popleft()
                self._main_waiting = True
                self._main_wake.clear()
                self._advance_if_quiet()
                if self._stalled:
                    raise RuntimeError(self._stalled)
            if not self._main_wake.wait(STALL_SECONDS):
                raise RuntimeError("virtual time stalled: no worker reported back")

    def _advance_if_quiet(self) -> None:
        """With the lock held: if nothing can happen at ``now`` any more, wake the next sleeper."""
        if not self._main_waiting or self._busy or self._items:
            return
        if not self._sleepers:
            self._stalled = "the runner waits for a step, but no step is running or sleeping"
            self._main_wake.set()
            return
        when, _, _, wake = heapq.heappop(self._sleepers)
        if when > self.now:
            self.now = when
            self.jumps += 1
        self.wakeups += 1
        self._busy += 1
        wake.set()


@dataclass(frozen=True)
class RunnerRun:
    """What the real runner did in virtual time."""

    makespan: float  # seconds, RunOutcome.finished - started
    started: Mapping[str, float]  # step -> virtual start (seconds from the run's start)
    finished: Mapping[str, float]
    polls: int
    jumps: int  # times the virtual clock moved forward
    wall: float  # real seconds the simulation took
    peaks: Mapping[str, int]  # most steps running at once: "*" in all, else per action


def simulated_actions(
    prepared: Prepared, actual: Mapping[str, float], clock: Callable[[], float]
) -> list[type[SimulatedBase]]:
    """Replace every prepared step's action with a simulated one of the same name and concurrency
    (so the runner groups and limits it as the real one) that takes ``actual[key]`` seconds of
    ``clock``. Returns the simulated classes (each counts its polls)."""
    from drplan.actions.base import Action, Poll

    needed: dict[str, set[str]] = {}
    for ps in prepared.steps.values():
        for ref in ps.step.references(prepared.mode):
            needed.setdefault(ref.step_key, set()).add(ref.output)

    classes: dict[str, type[SimulatedBase]] = {}
    for key, ps in list(prepared.steps.items()):
        real = ps.action
        if real.name not in classes:
            classes[real.name] = type(
                f"Simulated[{real.name}]",
                (SimulatedBase, Action),
                {
                    "name": real.name,
                    "family": real.family,
                    "summary": f"simulated {real.name}",
                    "concurrency": real.concurrency,
                    "polls": 0,
                    "poll_type": Poll,
                    "clock": staticmethod(clock),
                },
            )
        sim = classes[real.name](actual[key], sorted(needed.get(key, ())))
        prepared.steps[key] = dataclasses.replace(ps, action=sim)  # type: ignore[arg-type]
    return list(classes.values())


_POLLS = threading.Lock()


class SimulatedBase:
    """Start, poll and result of a job that takes ``duration`` seconds of virtual time (mixed into
    :class:`drplan.actions.base.Action` by :func:`simulated_actions`)."""

    polls: int
    poll_type: Any
    clock: Callable[[], float]

    def __init__(self, duration: float, outputs: list[str]) -> None:
        self.duration = duration
        self.outputs_needed = outputs

    def start(self, ctx: Any) -> dict[str, Any]:
        return {"done_at": self.clock() + self.duration}

    def poll(self, ctx: Any, handle: dict[str, Any]) -> Any:
        with _POLLS:  # workers started at the same instant poll concurrently
            type(self).polls += 1
        if self.clock() >= handle["done_at"]:
            return self.poll_type.finished()
        return self.poll_type.running("simulated")

    def result(self, ctx: Any, handle: dict[str, Any]) -> dict[str, Any]:
        return {name: f"sim-{name}" for name in self.outputs_needed}


def run_runner(
    plan: Plan, actual_of: Mapping[str, float] | None = None, *, lift_timeouts: bool = False
) -> RunnerRun:
    """Run ``plan`` (recover mode, default limits) through the real Runner in virtual time; each step
    takes ``actual_of[key]`` seconds (default: its estimate)."""
    from drplan.actions import registry
    from drplan.engine.events import EventBus
    from drplan.engine.prepare import prepare
    from drplan.engine.records import RunOptions
    from drplan.engine.runner import Runner

    prepared = prepare(plan, "recover", registry(), run_id="bench")
    actual = {k: s.estimate.total_seconds() for k, s in prepared.steps.items()}
    actual.update(actual_of or {})
    if lift_timeouts:  # noise must not fail a step: this measures scheduling
        for key, ps in list(prepared.steps.items()):
            longest = timedelta(seconds=4 * actual[key] + 3600)
            prepared.steps[key] = dataclasses.replace(ps, timeout=max(ps.timeout, longest))
    vt = VirtualTime({k: i for i, k in enumerate(prepared.order())})
    sim_classes = simulated_actions(prepared, actual, vt.clock)

    bus = EventBus("bench", clock=vt.clock)
    runner = Runner(prepared, aws=None, bus=bus, options=RunOptions(), clock=vt.clock)  # type: ignore[arg-type]
    runner.stop.wait = vt.sleep  # type: ignore[method-assign]
    runner._inbox = vt  # type: ignore[assignment]
    launch = runner._launch

    def counted_launch(key: str, handle: dict[str, object] | None) -> threading.Thread:
        vt.launched()
        return launch(key, handle)

    runner._launch = counted_launch  # type: ignore[method-assign, assignment]
    began = time.perf_counter()
    outcome = runner.run()
    wall = time.perf_counter() - began
    if not outcome.ok:
        bad = {
            k: (r.status, r.error or r.reason) for k, r in outcome.records.items() if r.status != "succeeded"
        }
        raise AssertionError(f"the simulated run did not succeed: {dict(list(bad.items())[:5])}")
    recs = outcome.records
    groups = {k: ps.action.name for k, ps in prepared.steps.items()}
    peaks = peak_concurrency(recs, groups)
    limits = prepared.limits
    over = {g: n for g, n in peaks.items() if n > limits.per_action.get(g, limits.parallelism or n)}
    if over or peaks["*"] > (limits.parallelism or peaks["*"]):
        raise AssertionError(f"the run exceeded its limits ({limits.describe()}): {peaks}")
    return RunnerRun(
        makespan=outcome.finished - outcome.started,
        started={k: r.started - outcome.started for k, r in recs.items() if r.started is not None},
        finished={k: r.finished - outcome.started for k, r in recs.items() if r.finished is not None},
        polls=sum(cls.polls for cls in sim_classes),
        jumps=vt.jumps,
        wall=wall,
        peaks=peaks,
    )


def peak_concurrency(records: Mapping[str, Any], group_of: Mapping[str, str]) -> dict[str, int]:
    """Most steps running at once, in all (``"*"``) and per action, from the records' start and
    finish times: a check that the run kept within its limits (a step's slot is freed when it
    finishes, before the next starts at the same instant)."""
    events = []
    for key, rec in records.items():
        events.append((rec.started, 1, key))
        events.append((rec.finished, -1, key))
    events.sort(key=lambda e: (e[0], e[1]))  # at equal times, finishes first
    running: dict[str, int] = {"*": 0}
    peaks: dict[str, int] = {"*": 0}
    for _, delta, key in events:
        for group in ("*", group_of[key]):
            running[group] = running.get(group, 0) + delta
            peaks[group] = max(peaks.get(group, 0), running[group])
    return peaks


# --- the rows ---------------------------------------------------------------------------------


def _hours(seconds: float) -> float:
    return seconds / 3600


def _human(seconds: float) -> str:
    from drplan.durations import humanize

    return humanize(round(seconds / 60) * 60)


def noisy_durations(plan: Plan, seed: int, sigma: float = NOISE_SIGMA) -> dict[str, float]:
    """Estimate x lognormal(0, sigma) for every step but ``wait`` (a wait takes what it says)."""
    from drplan.actions import registry
    from drplan.engine.prepare import prepare

    prepared = prepare(plan, "recover", registry(), run_id="bench")
    rng = random.Random(seed)
    out = {}
    for key in prepared.order():  # plan order: the same draws for the same plan and seed
        ps = prepared.steps[key]
        factor = 1.0 if ps.action.name == "wait" else rng.lognormvariate(0.0, sigma)
        out[key] = ps.estimate.total_seconds() * factor
    return out


def plan_figures(plan: Plan) -> dict[str, Any]:
    """The prediction, the critical path, the limits, and the throughput bounds that explain them."""
    from drplan.actions import registry
    from drplan.engine.prepare import prepare
    from drplan.graph import analyse, compile_graph

    actions = registry()
    prepared = prepare(plan, "recover", actions, run_id="bench")
    analysis = analyse(prepared.graph, actions, prepared.limits)
    gate = analyse(compile_graph(plan, "recover"), actions)  # what validate's DR301/DR302 judge
    if gate.predicted_rto != analysis.predicted_rto:
        raise AssertionError(
            f"validate predicts {gate.predicted_rto}, the dry run {analysis.predicted_rto}: they must agree"
        )
    work: dict[str, float] = {}
    for ps in prepared.steps.values():
        work[ps.action.name] = work.get(ps.action.name, 0.0) + ps.estimate.total_seconds()
    limits = prepared.limits
    bounds = {"total work / parallelism": sum(work.values()) / (limits.parallelism or math.inf)}
    for name, n in limits.per_action.items():
        if name in work:
            bounds[f"{name} work / {n}"] = work[name] / n
    return {
        "predicted": analysis.predicted_rto.total_seconds(),
        "critical": analysis.critical_rto.total_seconds(),
        "limits": limits.describe(),
        "steps": len(prepared.steps),
        "bounds": bounds,
        "estimates": {k: s.estimate.total_seconds() for k, s in prepared.steps.items()},
        "prepared": prepared,
    }


def resimulated(figures: Mapping[str, Any], run: RunnerRun) -> float:
    """``simulate`` (the prediction's engine) fed the step durations the runner observed (estimate
    plus the time until the next poll noticed the end): if this matches the runner, the prediction's
    gap is poll latency, not a different schedule."""
    from drplan.engine.schedule import simulate

    prepared = figures["prepared"]
    graph = prepared.graph.graph
    observed = {k: run.finished[k] - run.started[k] for k in graph}
    return simulate(
        graph,
        observed,
        limits=prepared.limits,
        group_of={k: graph.nodes[k]["step"].uses for k in graph},
        order={k: i for i, k in enumerate(s.key for s in prepared.plan.steps())},
        priority=lambda g, _d: _estimate_priority(g, figures["estimates"]),
    ).makespan


def noticed_after(estimate: float, options: Any = None) -> float:
    """When the runner's polling (:meth:`StepDriver._watch` with ``RunOptions``' defaults: a poll
    right after the start, then waits from ``poll_initial`` growing by ``poll_factor`` up to
    ``min(poll_max, max(15 s, estimate / 15))``) first sees a job that takes exactly ``estimate``
    seconds as done. Copied from the worker's rules: a model of what the prediction leaves out."""
    from drplan.engine.records import RunOptions

    options = options or RunOptions()
    cap = min(options.poll_max, max(15.0, estimate / 15))
    t, interval = 0.0, options.poll_initial
    while t < estimate:
        t += interval
        interval = min(interval * options.poll_factor, cap)
    return t


def poll_aware_prediction(figures: Mapping[str, Any]) -> float:
    """What ``predicted_rto`` would be if ``simulate`` counted each step until the poll that notices
    its end (:func:`noticed_after`) instead of its bare estimate: a possible fix, shown for scale."""
    from drplan.engine.schedule import simulate

    prepared = figures["prepared"]
    graph = prepared.graph.graph
    estimates = figures["estimates"]
    return simulate(
        graph,
        {k: noticed_after(estimates[k]) for k in graph},
        limits=prepared.limits,
        group_of={k: graph.nodes[k]["step"].uses for k in graph},
        order={k: i for i, k in enumerate(s.key for s in prepared.plan.steps())},
        priority=lambda g, _d: _estimate_priority(g, estimates),
    ).makespan


def _estimate_priority(graph: Any, estimates: Mapping[str, float]) -> Mapping[str, float]:
    """The runner ranks steps by the estimates, whatever the durations turn out to be."""
    from drplan.engine.schedule import remaining_path

    return remaining_path(graph, estimates)


def run(ctx: Context) -> Iterator[Row]:
    from generate import generate_plan

    from drplan.model import build_plan

    seeds = NOISE_SEEDS[:3] if ctx.quick else NOISE_SEEDS
    variants = (  # (label, backup_share, with the noisy runs)
        (f"{BACKUP_SHARE:.0%} AWS Backup", BACKUP_SHARE, True),
        ("default mix", None, False),
    )
    for label, share, noisy_too in variants:
        ctx.log(f"  {SERVICES:,} services, {label}: generating, predicting")
        plan = build_plan(generate_plan(SERVICES, backup_share=share))
        figures = plan_figures(plan)
        predicted = figures["predicted"]
        bounds = figures["bounds"]
        where = f"{SERVICES:,} services, {label}"

        # (a) every step takes exactly its estimate
        ctx.log(f"  {where}: the real runner in virtual time, exact estimates")
        exact = run_runner(plan)
        late = statistics.mean(
            (exact.finished[k] - exact.started[k]) - figures["estimates"][k] for k in exact.finished
        )
        aware = poll_aware_prediction(figures)
        yield Row(
            f"predicted RTO / runner, exact estimates ({where})",
            _hours(predicted),
            "h",
            baseline=_hours(exact.makespan),
            baseline_name="real runner, virtual time",
            target=RatioWithin(max_ratio=1.05, min_ratio=0.95, source="issue: within 5%"),
            note=(
                f"predicted {_human(predicted)}, runner {_human(exact.makespan)}; {figures['steps']:,} steps, "
                f"{figures['limits']}. The runner sees a step end at its next poll, {late:.0f} s after the "
                f"estimate on average; counting that, simulate() gives {_human(aware)} "
                f"({aware / exact.makespan:.3f}{TIMES} the runner). Peak {exact.peaks['*']} steps at once, "
                f"{exact.peaks.get('aws.backup.restore', 0)} AWS Backup restores; {exact.polls:,} polls, "
                f"{exact.jumps:,} clock jumps, {exact.wall:.1f} s real"
            ),
        )

        # (b) noisy durations, the prediction still from the estimates
        if noisy_too:
            ratios: list[float] = []
            makespans: list[float] = []
            replayed: list[float] = []
            walls: list[float] = []
            for seed in seeds:
                ctx.log(f"  {where}: the real runner, noisy durations, seed {seed}")
                noisy = run_runner(plan, noisy_durations(plan, seed), lift_timeouts=True)
                makespans.append(noisy.makespan)
                ratios.append(predicted / noisy.makespan)
                replayed.append(resimulated(figures, noisy) / noisy.makespan)
                walls.append(noisy.wall)
            yield Row(
                f"predicted RTO / runner, noisy durations ({where})",
                _hours(predicted),
                "h",
                baseline=_hours(statistics.median(makespans)),
                baseline_name=f"runner, median of {len(seeds)}",
                note=(
                    f"each step but waits takes estimate {TIMES} lognormal(0, {NOISE_SIGMA}), seeds "
                    f"{', '.join(map(str, seeds))}: predicted/runner {', '.join(f'{r:.3f}' for r in ratios)} "
                    f"(range {min(ratios):.3f}-{max(ratios):.3f}; runner {_human(min(makespans))} to "
                    f"{_human(max(makespans))}); simulate() fed the durations the runner saw reproduces "
                    f"it within {max(abs(r - 1) for r in replayed):.2%}; {statistics.mean(walls):.1f} s real per run"
                ),
            )

        # (c) how much the limits matter
        binding = max(bounds, key=bounds.__getitem__)
        yield Row(
            f"predicted RTO / critical path ({where})",
            _hours(predicted),
            "h",
            baseline=_hours(figures["critical"]),
            baseline_name="critical path, no limits",
            note=(
                f"critical path {_human(figures['critical'])}; with the run's limits {_human(predicted)}. "
                "Throughput bounds: "
                + ", ".join(f"{name} {_human(v)}" for name, v in sorted(bounds.items(), key=lambda i: -i[1]))
                + f"; the largest ({binding}) is what the limits cost"
            ),
        )
