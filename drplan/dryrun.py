"""The dry run: what a recovery or a drill would do, in order, without touching anything.

:func:`build_dry_run` turns a valid plan and a mode into a :class:`DryRun`: every step that would
run, in the order it would start, with its parameters resolved for the mode (``drill_with``
merged, targets renamed with the drill suffix, the run id shown as ``<run-id>``), its wave and
predicted start and finish, and whether it is on the critical path; the steps the mode leaves
out, with the reason; and the predicted RTO of every service and of the plan against their
objectives, with a verdict.

Which steps run and with which parameters is decided by :func:`drplan.engine.prepare.prepare`,
the code real runs use, so what the dry run shows is what runs. References stay symbolic
(``${orders-db.restore.endpoint}``): only a run resolves them.

Library code: no printing, no exit codes (see :mod:`drplan.report.dryrun` and
:mod:`drplan.cli.review`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from drplan.actions.base import PreflightResult
from drplan.engine.schedule import Limits
from drplan.model import Mode, Plan, Step
from drplan.secrets import mask_sensitive

if TYPE_CHECKING:
    from drplan.actions.base import Action
    from drplan.graph import Analysis, RecoveryGraph
    from drplan.pipeline import Compiled

#: How a drill changed one parameter: given by ``drill_with``, renamed by isolation, or removed.
Change = Literal["drill_with", "renamed", "removed"]
Status = Literal["met", "missed", "no-objective", "not-run"]
Verdict = Literal["met", "missed", "unchecked"]


# --- drill changes -----------------------------------------------------------------------------


def drill_changes(step: Step, params: Mapping[str, Any]) -> dict[str, Change]:
    """How a drill changed each parameter of ``step``, given the parameters it runs with."""
    merged = step.params_for("drill")
    drill_keys = set(step.drill_params or ())
    changes: dict[str, Change] = {}
    for key in [*merged, *(k for k in params if k not in merged)]:
        if key not in params:
            changes[key] = "removed"
        elif key not in merged or params[key] != merged[key]:
            changes[key] = "renamed"
        elif key in drill_keys:
            changes[key] = "drill_with"
    return changes


# --- the dry-run model --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    """A step that would run, with its predicted timing."""

    key: str
    step: Step
    uses: str
    family: str | None  # the action's family (None when the action is unknown)
    what: str  # the action's plain-words description of these parameters
    params: Mapping[str, Any]
    changes: Mapping[str, Change]  # drill only: how the drill changed each parameter
    wave: int
    start: timedelta
    finish: timedelta
    duration: timedelta
    defaulted: bool  # no estimate in the plan: the action's typical duration was used
    timeout: timedelta  # what a run applies: the plan's, or the engine's default
    slack: timedelta
    critical: bool
    waits_for: tuple[str, ...]  # direct predecessors in the graph, plan order
    #: The action the plan names when the run uses another (``--ungraceful``: its failover variant).
    instead_of: str | None = None
    #: Read-only checks of the step against the account (a later ``--preflight``): None when not
    #: run; formatters print them when present.
    preflight: tuple[PreflightResult, ...] | None = None

    @property
    def service(self) -> str:
        return self.step.service

    @property
    def title(self) -> str:
        return self.step.title


@dataclass(frozen=True)
class SkippedStep:
    key: str
    step: Step
    reason: str
    what: str  # what it would have done (with the parameters of a real recovery)

    @property
    def title(self) -> str:
        return self.step.title


@dataclass(frozen=True)
class ServiceOutcome:
    service: str
    tier: int | None
    predicted: timedelta | None  # None: no step of the service runs in this mode
    objective: timedelta | None
    objective_from: Literal["service", "plan"] | None
    status: Status
    path: tuple[str, ...]  # the chain of steps that decides the predicted RTO
    critical: timedelta | None = None  # the service's critical path alone, with no limits

    @property
    def limited(self) -> bool:
        """The run's limits make the service slower than its critical path."""
        return self.predicted is not None and self.critical is not None and self.predicted > self.critical


def _status(predicted: timedelta | None, objective: timedelta | None) -> Status:
    if predicted is None:
        return "not-run"
    if objective is None:
        return "no-objective"
    return "met" if predicted <= objective else "missed"


@dataclass(frozen=True)
class DryRun:
    plan: Plan
    mode: Mode
    steps: tuple[PlannedStep, ...]  # in the order they would start
    skipped: tuple[SkippedStep, ...]  # in plan order
    waves: tuple[tuple[str, ...], ...]
    critical_path: tuple[str, ...]
    predicted_rto: timedelta  # within the run's limits (what objectives are judged on)
    objective: timedelta | None  # the plan's RTO objective
    services: tuple[ServiceOutcome, ...]  # plan order
    suffix: str | None  # drill name suffix, the run id shown as ``<run-id>`` (drill only)
    generated_at: datetime | None = None
    critical_rto: timedelta = timedelta(0)  # the critical path alone, as if nothing limited the run
    limits: Limits = field(default_factory=Limits)
    graph: RecoveryGraph | None = field(default=None, compare=False, repr=False)
    analysis: Analysis | None = field(default=None, compare=False, repr=False)

    @property
    def limited(self) -> bool:
        """The run's limits (parallelism, AWS quotas) make the plan slower than its critical path."""
        return self.predicted_rto > self.critical_rto

    @property
    def plan_status(self) -> Status:
        return _status(self.predicted_rto if self.steps else None, self.objective)

    @property
    def missed(self) -> list[str]:
        """Who would miss an objective: service ids, then ``"plan"``. A service that only takes the
        plan's RTO is judged with the plan ("every service back"): its miss is the plan's, listed
        once (as validate's DR302 and the drill verdict do)."""
        out = [s.service for s in self.services if s.status == "missed" and s.objective_from == "service"]
        if self.plan_status == "missed" or any(
            s.status == "missed" and s.objective_from == "plan" for s in self.services
        ):
            out.append("plan")
        return out

    @property
    def verdict(self) -> Verdict:
        if self.missed:
            return "missed"
        checked = self.plan_status == "met" or any(s.status == "met" for s in self.services)
        return "met" if checked else "unchecked"

    @property
    def ok(self) -> bool:
        return not self.missed

    def step(self, key: str) -> PlannedStep:
        return self._by_key[key]

    @cached_property
    def _by_key(self) -> dict[str, PlannedStep]:
        """Steps by key: the runbook and formatters look steps up once per step (10,000 of them)."""
        return {planned.key: planned for planned in self.steps}

    def with_preflight(self, results: Mapping[str, Sequence[PreflightResult]]) -> DryRun:
        """The same dry run with read-only preflight results attached per step key."""
        steps = tuple(dataclasses.replace(s, preflight=tuple(results.get(s.key, ()))) for s in self.steps)
        return dataclasses.replace(self, steps=steps)


def build_dry_run(
    plan: Plan,
    mode: Mode = "recover",
    *,
    actions: Mapping[str, Action] | None = None,
    generated_at: datetime | None = None,
    parallelism: int | None = None,
    compiled: Compiled | None = None,
    ungraceful: bool = False,
) -> DryRun:
    """The dry run of a valid, acyclic plan in ``mode`` (``parallelism`` as ``--parallelism`` would
    set it for the run). Touches nothing; imports no AWS library."""
    from drplan.engine.prepare import prepare
    from drplan.graph import analyse

    if actions is None:
        from drplan.actions import registry

        actions = registry()
    reuse = compiled if compiled is not None and mode == "recover" else None
    prepared = prepare(
        plan,
        mode,
        actions,
        parallelism=parallelism,
        graph=reuse.recover_graph if reuse else None,
        ungraceful=ungraceful,
    )
    rg = prepared.graph
    if (
        reuse is not None
        and reuse.recover_analysis is not None
        and rg is reuse.recover_graph
        and (reuse.recover_analysis.limits == prepared.limits)
    ):
        analysis = reuse.recover_analysis  # validation analysed this very graph with these limits
    else:
        analysis = analyse(rg, actions, prepared.limits)
    position = {step.key: i for i, step in enumerate(plan.steps())}

    planned: list[PlannedStep] = []
    skipped: list[SkippedStep] = []
    for step in plan.steps():
        action = actions.get(step.uses)
        if step.key in prepared.skipped:
            reason = prepared.skipped[step.key]
            skipped.append(SkippedStep(step.key, step, reason, _what(action, step, step.params)))
            continue
        params = mask_sensitive(prepared.steps[step.key].params)
        timeout = prepared.steps[step.key].timeout
        runs = prepared.steps[step.key].action
        if runs.name != step.uses:  # --ungraceful: the variant says what happens
            action = runs
        timing = analysis.steps[step.key]
        planned.append(
            PlannedStep(
                key=step.key,
                step=step,
                uses=runs.name,
                family=action.family if action is not None else None,
                what=_what(action, step, params),
                params=params,
                changes=drill_changes(step, params) if mode == "drill" else {},
                wave=timing.wave,
                start=timing.start,
                finish=timing.finish,
                duration=timing.duration,
                defaulted=timing.defaulted,
                timeout=timeout,
                slack=timing.slack,
                critical=timing.critical,
                waits_for=tuple(sorted(rg.graph.predecessors(step.key), key=position.__getitem__)),
                instead_of=step.uses if runs.name != step.uses else None,
            )
        )
    # The order they would start; a predecessor starts no later and is in an earlier wave.
    planned.sort(key=lambda s: (s.start, s.wave, position[s.key]))

    services = []
    for sid, service in plan.services.items():
        objectives = plan.objectives_of(sid)
        predicted = analysis.service_rto.get(sid)
        source: Literal["service", "plan"] | None = None
        if service.objectives.rto is not None:
            source = "service"
        elif plan.objectives.rto is not None:
            source = "plan"
        services.append(
            ServiceOutcome(
                service=sid,
                tier=service.tier,
                predicted=predicted,
                objective=objectives.rto,
                objective_from=source,
                status=_status(predicted, objectives.rto),
                path=analysis.service_paths.get(sid, ()),
                critical=analysis.service_critical_rto.get(sid),
            )
        )
    return DryRun(
        plan=plan,
        mode=mode,
        steps=tuple(planned),
        skipped=tuple(skipped),
        waves=analysis.waves,
        critical_path=analysis.critical_path,
        predicted_rto=analysis.predicted_rto,
        objective=plan.objectives.rto,
        services=tuple(services),
        suffix=prepared.suffix or None,
        generated_at=generated_at,
        critical_rto=analysis.critical_rto,
        limits=analysis.limits,
        graph=rg,
        analysis=analysis,
    )


def _what(action: Action | None, step: Step, params: Mapping[str, Any]) -> str:
    if action is None:
        return f"unknown action {step.uses}"
    try:
        return action.describe(params)
    except (KeyError, TypeError, ValueError):
        return action.summary


# --- helpers shared by the formatters -----------------------------------------------------------


def offset(value: timedelta) -> str:
    """A predicted time from the start of the run: ``+0m``, ``+25m``, ``+1h05m``, ``+2m10s``."""
    total = round(value.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"
    if seconds:
        text += f"{seconds:02d}s"
    return "+" + text
