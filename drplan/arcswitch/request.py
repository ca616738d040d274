"""The ``CreatePlan`` request of ARC Region switch, and its validation against botocore's model.

The request holds two workflows: the recovery (active/passive: *activate* the recovery Region;
active/active: *deactivate* the primary) and the failback, the way back (*activate* the primary
Region again), of the steps whose blocks act in both directions; and the plan's CloudWatch alarms
as ``associatedAlarms`` (:mod:`~drplan.arcswitch.alarms`).

The request is checked twice, both from the ``arc-region-switch`` service model that botocore
ships (no network, no credentials): botocore's own parameter validation (required members, types,
minimum lengths and values: what a client refuses before sending), and the constraints botocore
leaves to the service (patterns, enums, maximum lengths and values), so that a request this
module writes is one ARC accepts as far as its published model says.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drplan.arcswitch.alarms import Alarm
from drplan.arcswitch.blocks import Block
from drplan.arcswitch.settings import Settings
from drplan.arcswitch.structure import Stages
from drplan.errors import DrplanError
from drplan.model import Plan

SERVICE = "arc-region-switch"
OPERATION = "CreatePlan"
#: ARC's limit on a plan's recovery time objective (minutes: one week).
MAX_RTO_MINUTES = 10080


def plan_name(plan: Plan, settings: Settings) -> str:
    """``--name``, else the drplan plan's name made an ARC plan name (letters, digits, hyphens, at
    most 32, starting and ending with a letter or digit)."""
    if settings.name:
        return settings.name
    name = re.sub(r"[^a-zA-Z0-9-]+", "-", plan.name)[:32].strip("-")
    return name or "drplan"


@dataclass(frozen=True)
class Direction:
    """One workflow: what it does to which Region."""

    action: str  # ARC's workflowTargetAction
    region: str  # its workflowTargetRegion
    failback: bool

    @property
    def what(self) -> str:
        done = f"{self.action} {self.region}"
        return f"fail back: {done}" if self.failback else done


def directions(settings: Settings) -> tuple[Direction, Direction]:
    """(recovery, failback). Active/passive: the recovery *activates* the recovery Region, the failback
    *activates* the primary again. Active/active: the recovery *deactivates* the primary (traffic
    stays in the recovery Region), the failback *activates* it again."""
    if settings.approach == "activePassive":
        recovery = Direction("activate", settings.recovery_region, failback=False)
    else:
        recovery = Direction("deactivate", settings.primary_region, failback=False)
    return recovery, Direction("activate", settings.primary_region, failback=True)


def workflow(direction: Direction, steps: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    return {
        "workflowTargetAction": direction.action,
        "workflowTargetRegion": direction.region,
        "workflowDescription": f"drplan plan {plan.name}: {direction.what} (drplan export arc-region-switch)",
        "steps": steps,
    }


def workflow_steps(
    blocks: Mapping[str, Block], chosen: Stages, descriptions: Mapping[str, str], *, failback: bool = False
) -> list[dict[str, Any]]:
    """The stages as ARC steps: a stage of one step is its block, a stage of several a Parallel block."""
    steps: list[dict[str, Any]] = []
    prefix = "failback-stage" if failback else "stage"
    for number, stage in enumerate(chosen, start=1):
        if len(stage) == 1:
            steps.append(blocks[stage[0]].step(descriptions[stage[0]], failback=failback))
            continue
        steps.append(
            {
                "name": f"{prefix}-{number}",
                "description": f"{len(stage)} steps side by side: {', '.join(stage)}",
                "executionBlockType": "Parallel",
                "executionBlockConfiguration": {
                    "parallelConfig": {
                        "steps": [blocks[k].step(descriptions[k], failback=failback) for k in stage]
                    }
                },
            }
        )
    return steps


def build_request(
    plan: Plan,
    settings: Settings,
    blocks: Mapping[str, Block],
    chosen: Stages,
    descriptions: Mapping[str, str],
    *,
    back: Stages = (),
    alarms: Mapping[str, Alarm] | None = None,
) -> dict[str, Any]:
    """The request: the recovery workflow of the ``chosen`` stages, the failback workflow of the
    ``back`` stages (none when empty), and the ``alarms`` as ``associatedAlarms``."""
    recovery, failback = directions(settings)
    workflows = [workflow(recovery, workflow_steps(blocks, chosen, descriptions), plan)]
    if back:
        # A step's own description says what it does in the recovery: the failback's says the way back.
        back_descriptions = {
            key: f"Failback to {failback.region}, the way back of {key}: {blocks[key].back_note}"[:1024]
            for stage in back
            for key in stage
        }
        workflows.append(
            workflow(failback, workflow_steps(blocks, back, back_descriptions, failback=True), plan)
        )
    request: dict[str, Any] = {
        "name": plan_name(plan, settings),
        "description": (plan.description or f"drplan plan {plan.name}")[:1024],
        "executionRole": settings.execution_role,
        "regions": [settings.primary_region, settings.recovery_region],
        "recoveryApproach": settings.approach,
        "workflows": workflows,
        "tags": {**plan.tags, "drplan:plan": plan.name},
    }
    if alarms:
        request["associatedAlarms"] = {name: dict(alarm.entry) for name, alarm in alarms.items()}
    if settings.approach == "activePassive":
        request["primaryRegion"] = settings.primary_region
    rto = plan.objectives.rto
    if rto is not None:
        request["recoveryTimeObjectiveMinutes"] = min(
            MAX_RTO_MINUTES, max(1, math.ceil(rto.total_seconds() / 60))
        )
    return request


@functools.cache
def input_shape() -> Any:
    """``CreatePlan``'s input shape, from the model files botocore ships. Read with botocore's loader
    alone: a session would read the AWS configuration files, which an export has no use for."""
    import botocore
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    try:
        data = create_loader().load_service_model(SERVICE, "service-2")
    except DataNotFoundError as exc:
        raise DrplanError(
            f"botocore {botocore.__version__} has no model of ARC Region switch ({SERVICE})",
            hint="upgrade it: pip install -U botocore boto3",
        ) from exc
    return ServiceModel(data, service_name=SERVICE).operation_model(OPERATION).input_shape


def problems(request: Mapping[str, Any]) -> list[str]:
    """Everything botocore's ``arc-region-switch`` model says is wrong with ``request`` (empty when
    it is a valid ``CreatePlan`` input)."""
    from botocore.validate import ParamValidator

    shape = input_shape()
    found: list[str] = []
    report = ParamValidator().validate(dict(request), shape)
    if report.has_errors():
        found.extend(line.strip() for line in report.generate_report().splitlines() if line.strip())
    _constraints(request, shape, "", found)
    return found


def _constraints(value: Any, shape: Any, path: str, found: list[str]) -> None:
    """Patterns, enums and maxima, which botocore's client does not check."""
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure" and isinstance(value, Mapping):
        for name, member in shape.members.items():
            if name in value:
                _constraints(value[name], member, f"{path}.{name}" if path else name, found)
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{path}: {len(value)} items, more than {meta['max']}")
        for i, item in enumerate(value):
            _constraints(item, shape.member, f"{path}[{i}]", found)
    elif kind == "map" and isinstance(value, Mapping):
        for key, item in value.items():
            _constraints(key, shape.key, f"{path} key {key!r}", found)
            _constraints(item, shape.value, f"{path}[{key!r}]", found)
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} is not one of {', '.join(shape.enum)}")
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{path}: {len(value)} characters, more than {meta['max']}")
        pattern = meta.get("pattern")
        if pattern and re.fullmatch(pattern, value) is None:
            found.append(f"{path}: {value!r} does not match {pattern}")
    elif (
        kind in ("integer", "long", "float", "double")
        and isinstance(value, (int, float))
        and "max" in meta
        and value > meta["max"]
    ):
        found.append(f"{path}: {value} is more than {meta['max']}")
