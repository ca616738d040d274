"""Seed the sandbox from the plan: what each step restores from must exist, with real data.

Each action knows what it restores from, so seeding asks the actions (``Action.seed``) instead of
duplicating the catalogue here. AWS Backup recovery points are the exception: moto has none, so
the sandbox's emulator creates them (backed by native snapshots).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from drplan.actions import registry
from drplan.actions.base import StepContext
from drplan.durations import parse_duration
from drplan.model import Mode

if TYPE_CHECKING:
    from drplan.sandbox import Sandbox


def seed_plan(sandbox: Sandbox) -> None:
    """Everything the plan refers to, for both modes: what recoveries restore from, and what drills
    use instead (``drill_with``: a drill Auto Scaling group, a drill hosted zone, another vault)."""
    plan = sandbox.plan
    actions = registry()
    started = datetime.now(timezone.utc)
    for step in plan.steps():
        action = actions.get(step.uses)
        if action is None:
            continue
        passes: list[tuple[Mode, Mapping[str, Any]]] = [("recover", step.params)]
        if step.drill_params:
            passes.append(("drill", step.params_for("drill")))
        for mode, params in passes:
            region = step.region or (plan.drill.region if mode == "drill" else None) or plan.aws.region
            ctx = StepContext(
                step=step,
                params=params,
                mode=mode,
                run_id="sandbox-seed",
                plan=plan,
                aws=sandbox.session(region=region or "us-east-1"),
                objectives=plan.objectives_of(step.service),
                started_at=started,
                seed_state=sandbox.seed_state,
            )
            if step.uses == "aws.backup.restore":
                _seed_recovery_point(sandbox, ctx)
            else:
                action.seed(ctx)


def _seed_recovery_point(sandbox: Sandbox, ctx: StepContext) -> None:
    from drplan.sandbox import BACKUP_AGE

    params = ctx.params
    if params.get("recovery_point", "latest") != "latest" or "${" in str(params.get("vault", "")):
        return  # a fixed ARN cannot be recreated; the drill will report it missing
    rpo = ctx.objectives.rpo
    age = min(BACKUP_AGE, rpo / 2) if rpo else BACKUP_AGE
    max_age = params.get("max_age")
    if max_age and max_age != "rpo":
        age = min(age, parse_duration(max_age) / 2)
    sandbox.backup.seed(
        region=ctx.region,
        vault=str(params["vault"]),
        resource_arn=str(params["resource_arn"]),
        resource_type=params.get("resource_type"),
        age=age,
    )
