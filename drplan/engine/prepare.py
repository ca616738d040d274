"""Turn a plan into what one run will execute: steps, parameters, limits, tags, skip reasons.

The dry run (``drplan plan``) and real runs (``recover``, ``drill``) both start here, so what the
dry run shows is what runs. Nothing here calls AWS.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions.base import Action
from drplan.engine.schedule import Limits
from drplan.graph import RecoveryGraph, bypass, compile_graph, run_limits, step_duration
from drplan.model import Mode, Plan, Step, with_run_id

#: Used when a step sets no timeout: generous, but a hung job still ends.
TIMEOUT_FACTOR = 4
MIN_DEFAULT_TIMEOUT = timedelta(minutes=5)
RUN_ID_PLACEHOLDER = "<run-id>"


def _now_tag() -> str:
    """Creation time in a tag, so `drplan cleanup --sweep --older-than` can judge age by tags alone."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id() -> str:
    """Short, lowercase, valid in every AWS name it ends up in: ``3f9c2a71``."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class PreparedStep:
    step: Step
    action: Action
    params: Mapping[str, Any]  # for this mode: drill_with merged, targets isolated; references unresolved
    estimate: timedelta
    timeout: timedelta

    @property
    def key(self) -> str:
        return self.step.key


@dataclass
class Prepared:
    plan: Plan
    mode: Mode
    run_id: str
    graph: RecoveryGraph  # only the steps that run
    steps: dict[str, PreparedStep]
    skipped: dict[str, str] = field(default_factory=dict)  # step -> why it does not run in this mode
    suffix: str = ""  # drill name suffix ("" in recoveries)
    tags: dict[str, str] = field(default_factory=dict)
    region: str | None = None  # the run's default region (drill.region or aws.region)
    limits: Limits = field(default_factory=Limits)  # parallelism and per-action limits (run and prediction)

    def order(self) -> list[str]:
        """Steps in plan order (the scheduler's tie-breaker)."""
        return [s.key for s in self.plan.steps() if s.key in self.steps]


def prepare(
    plan: Plan,
    mode: Mode,
    actions: Mapping[str, Action],
    *,
    run_id: str | None = None,
    parallelism: int | None = None,
    limit_overrides: Mapping[str, int] | None = None,
    graph: RecoveryGraph | None = None,
    ungraceful: bool = False,
) -> Prepared:
    """What a run of ``plan`` in ``mode`` executes. ``parallelism`` (``--parallelism``) overrides the
    plan's ``run.parallelism``; ``limit_overrides`` the actions' own concurrency limits;
    ``ungraceful`` (``--ungraceful``) runs each step whose action has an ungraceful variant with it."""
    run_id = run_id or RUN_ID_PLACEHOLDER
    steps, skipped = prepare_steps(plan, mode, actions, run_id=run_id, ungraceful=ungraceful)
    # ``graph``: the mode's graph, already compiled (validation's); copied before it is changed.
    graph = graph if graph is not None else compile_graph(plan, mode)
    if any(key in graph.graph for key in skipped):
        graph = RecoveryGraph(plan, mode, graph.graph.copy(), graph.service_graph)
        for key in skipped:
            bypass(graph.graph, key)

    own = {
        "drplan:plan": plan.name,
        "drplan:run-id": run_id,
        "drplan:mode": mode,
        "drplan:created": _now_tag(),
    }
    tags = {**plan.tags, **(plan.drill.tags if mode == "drill" else {}), **own}
    region = (plan.drill.region if mode == "drill" else None) or plan.aws.region
    limits = run_limits(plan, actions, parallelism=parallelism, overrides=limit_overrides)
    suffix = plan.drill.suffix(run_id) if mode == "drill" else ""
    return Prepared(plan, mode, run_id, graph, steps, skipped, suffix, tags, region, limits)


def prepare_steps(
    plan: Plan,
    mode: Mode,
    actions: Mapping[str, Action],
    *,
    run_id: str = RUN_ID_PLACEHOLDER,
    ungraceful: bool = False,
) -> tuple[dict[str, PreparedStep], dict[str, str]]:
    """The steps that run in ``mode`` with their parameters, and why each other step does not:
    everything of :func:`prepare` but the graph (the runbook compares modes with it)."""
    suffix = plan.drill.suffix(run_id) if mode == "drill" else ""
    skipped: dict[str, str] = {
        s.key: f"only in {'drills' if s.only == 'drill' else 'real recoveries'}"
        for s in plan.steps()
        if not s.runs_in(mode)
    }
    steps: dict[str, PreparedStep] = {}
    for step in plan.steps():
        if step.key in skipped:
            continue
        action = actions[step.uses]
        if ungraceful and action.ungraceful:  # same parameters, the variant for a Region that is down
            action = actions[action.ungraceful]
        params: Mapping[str, Any] | None = step.params_for(mode)
        if mode == "drill":
            merged = with_run_id(step.params_for(mode), run_id)
            params = action.isolate(merged, suffix, redirected=step.drill_params is not None)
            if params is None:
                skipped[step.key] = "it would change production in a drill (give `drill_with` to redirect it)"
                continue
        estimate, _ = step_duration(step, actions, mode)
        timeout = (
            step.timeout if step.timeout is not None else max(estimate * TIMEOUT_FACTOR, MIN_DEFAULT_TIMEOUT)
        )
        assert params is not None
        steps[step.key] = PreparedStep(step, action, params, estimate, timeout)

    # A step that needs an output of a step that does not run cannot run either.
    changed = True
    while changed:
        changed = False
        for key, prepared in list(steps.items()):
            for ref in prepared.step.references(mode):
                if ref.step_key in skipped and key not in skipped:
                    skipped[key] = (
                        f"needs `{ref.text}` from `{ref.step_key}`, which does not run in this mode"
                    )
                    del steps[key]
                    changed = True
                    break
    return steps, skipped
