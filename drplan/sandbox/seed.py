"""Seed the sandbox from the plan: what each step restores from must exist, with real data.

Each action knows what it restores from, so seeding asks the actions (``Action.seed``) instead of
duplicating the catalogue here. AWS Backup recovery points are the exception: moto has none, so
the sandbox's emulator creates them (backed by native snapshots).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from drplan.actions import registry
from drplan.actions.base import StepContext
from drplan.durations import parse_duration

if TYPE_CHECKING:
    from drplan.sandbox import Sandbox


def seed_plan(sandbox: Sandbox) -> None:
    from drplan.sandbox import BACKUP_AGE

    plan = sandbox.plan
    actions = registry()
    started = datetime.now(timezone.utc)
    for step in plan.steps():
        action = actions.get(step.uses)
        if action is None:
            continue
        region = step.region or plan.aws.region or "us-east-1"
        session = sandbox.session(region=region)
        ctx = StepContext(
            step=step,
            params=step.params,
            mode="recover",
            run_id="sandbox-seed",
            plan=plan,
            aws=session,
            objectives=plan.objectives_of(step.service),
            started_at=started,
            seed_state=sandbox.seed_state,
        )
        if step.uses == "aws.backup.restore":
            params = step.params
            if params.get("recovery_point", "latest") != "latest":
                continue  # a fixed ARN cannot be recreated; the drill will report it missing
            rpo = plan.objectives_of(step.service).rpo
            age = min(BACKUP_AGE, rpo / 2) if rpo else BACKUP_AGE
            max_age = params.get("max_age")
            if max_age and max_age != "rpo":
                age = min(age, parse_duration(max_age) / 2)
            sandbox.backup.seed(
                region=region,
                vault=str(params["vault"]),
                resource_arn=str(params["resource_arn"]),
                resource_type=params.get("resource_type"),
                age=age,
            )
            continue
        action.seed(ctx)
