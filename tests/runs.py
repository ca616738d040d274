"""Test helpers: run a small plan through the real engine against moto (in-process)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from drplan.actions import registry
from drplan.actions.base import StepContext
from drplan.aws import ApiCall, AwsSession
from drplan.engine.events import Event, EventBus
from drplan.engine.prepare import Prepared, prepare
from drplan.engine.records import RunOptions, RunOutcome
from drplan.engine.runner import Runner
from drplan.model import Mode, build_plan

FAST = dict(
    poll_initial=0.01, poll_factor=1.0, poll_max=0.05, backoff_base=0.01, backoff_max=0.05, retry_delay=0.01
)


def plan_data(services: Mapping[str, Any], **top: Any) -> dict[str, Any]:
    return {"drplan": 1, "name": "test", "aws": {"region": "us-east-1"}, **top, "services": dict(services)}


def one_step(uses: str, params: Mapping[str, Any], **step: Any) -> dict[str, Any]:
    return plan_data({"svc": {"steps": [{"id": "s", "uses": uses, "with": dict(params), **step}]}})


def seed(ctx: StepContext, seed_state: dict[str, Any] | None = None) -> None:
    """What the sandbox does before a run: the step's seeder creates its source from ``ctx.params``."""
    from drplan.sandbox.seeders import SEEDERS, SeedContext

    SEEDERS[ctx.step.uses](SeedContext.of(ctx, seed_state))


@dataclass
class Run:
    prepared: Prepared
    runner: Runner
    outcome: RunOutcome
    events: list[Event] = field(default_factory=list)
    calls: list[ApiCall] = field(default_factory=list)

    def record(self, key: str = "svc.s") -> Any:
        return self.outcome.records[key]

    def kinds(self, step: str | None = None) -> list[str]:
        return [e.kind for e in self.events if step is None or e.step == step]


def run_plan(
    data: Mapping[str, Any],
    mode: Mode = "recover",
    *,
    run_id: str = "t35t1d",
    aws: AwsSession | None = None,
    **options: Any,
) -> Run:
    plan = build_plan(data)
    prepared = prepare(
        plan,
        mode,
        registry(),
        run_id=run_id,
        parallelism=options.pop("parallelism", None),
        limit_overrides=options.pop("group_limits", None),
    )
    calls: list[ApiCall] = []
    session = aws or AwsSession(region="us-east-1")
    session.on_call = calls.append
    bus = EventBus(run_id)
    events: list[Event] = []
    bus.subscribe(events.append)
    runner = Runner(prepared, session, bus, RunOptions(**{**FAST, **options}))
    outcome = runner.run()
    return Run(prepared, runner, outcome, events, calls)
