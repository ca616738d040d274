"""What a translation of :mod:`drplan.arcswitch.blocks` works with: the step, where it runs (its
Region, account and partition), and the helpers that refuse what ARC cannot express (references,
peers in the wrong Region).

A :class:`Block` holds the step's configuration twice: for the recovery workflow (``config``) and
for the failback workflow (``back``: the way back to the primary Region), or, when the step has no
place on the way back, why not (``back_note``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drplan.arcswitch.settings import ROLE_ARN, Settings
from drplan.engine.prepare import PreparedStep
from drplan.model import Plan


class Unmappable(Exception):
    """This step has no ARC execution block of the same meaning; the message says why."""


@dataclass(frozen=True)
class Block:
    key: str  # the drplan step
    block_type: str  # ARC's executionBlockType
    member: str  # the member of executionBlockConfiguration it fills
    config: Mapping[str, Any]  # in the recovery workflow
    caveats: tuple[str, ...] = ()
    back: Mapping[str, Any] | None = None  # in the failback workflow; None: not in it
    back_note: str = ""  # what it does on the way back, or why it is not in the failback workflow

    def step(self, description: str, *, failback: bool = False) -> dict[str, Any]:
        """The ARC ``Step`` of the recovery workflow (of the failback workflow with ``failback``)."""
        config = self.back if failback else self.config
        assert config is not None, f"{self.key} is not in the failback workflow"
        return {
            "name": self.key,
            "description": description,
            "executionBlockType": self.block_type,
            "executionBlockConfiguration": {self.member: dict(config)},
        }


@dataclass(frozen=True)
class Context:
    """What a translation knows: the prepared step, the settings, and where the step runs."""

    prepared: PreparedStep
    settings: Settings
    plan: Plan

    @property
    def key(self) -> str:
        return self.prepared.key

    @property
    def params(self) -> Mapping[str, Any]:
        return self.prepared.params

    @property
    def region(self) -> str:
        """The Region the step runs in: its own, else the plan's, else the recovery Region."""
        return self.prepared.step.region or self.plan.aws.region or self.settings.recovery_region

    @property
    def other_region(self) -> str:
        s = self.settings
        return s.primary_region if self.region == s.recovery_region else s.recovery_region

    @property
    def account(self) -> str:
        """The account of the step's resources: its role's account for a cross-account step."""
        role = self.prepared.step.role_arn
        match = ROLE_ARN.fullmatch(role or "")
        if match:
            return match.group(1)
        return self.settings.account_id or self.plan.aws.account_id or self.settings.role_account

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    def timeout_minutes(self) -> int:
        """ARC's timeout for the block: the step's timeout (drplan's default when it sets none), in
        whole minutes, rounded up."""
        return max(1, math.ceil(self.prepared.timeout.total_seconds() / 60))

    def cross_account(self) -> dict[str, str]:
        """``crossAccountRole`` for a step that sets ``role_arn``, with ``externalId`` when the step
        gives the ``external_id`` the role's trust policy requires. (``--external-id``, which a run
        uses for roles whose steps give none, is not an export option: such a role is written
        without one.)"""
        step = self.prepared.step
        if not step.role_arn:
            return {}
        extra = {"crossAccountRole": step.role_arn}
        if step.external_id:
            extra["externalId"] = step.external_id
        return extra

    def text(self, name: str) -> str:
        """A string parameter written literally: ARC steps have no outputs to read, and ARC reads
        no secrets, so a ``${...}`` makes the step unmappable."""
        value = self.params.get(name)
        if isinstance(value, str) and "${" in value:
            raise Unmappable(
                f"`{name}` is {value!r}: ARC steps cannot read another step's outputs or a secret"
            )
        if value is None:
            raise Unmappable(f"`{name}` is not set")
        return str(value)

    def own_arn(self, given: str | None = None) -> str | None:
        """The step's resource ARN given with ``--arn`` (or written as the parameter ``given``)."""
        if self.key in self.settings.arns:
            return self.settings.arns[self.key]
        return given if given and given.startswith("arn:") else None

    def peer(self) -> str | None:
        return self.settings.peers.get(self.key)

    def region_to_run(self) -> str:
        """ARC's ``regionToRun`` for the step's Region: the recovery Region is the one activated."""
        return "activatingRegion" if self.region == self.settings.recovery_region else "deactivatingRegion"


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def region_of(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[3] else None


def in_other_region(ctx: Context, peer: str, what: str) -> None:
    region = region_of(peer)
    if region != ctx.other_region:
        raise Unmappable(
            f"--peer {ctx.key}={peer} must be the {what} in {ctx.other_region} (the other Region of the plan), "
            f"not in {region or 'no Region'}"
        )


def literal_number(ctx: Context, name: str) -> int:
    value = ctx.params.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unmappable(f"`{name}` is {value!r}: ARC steps cannot read another step's outputs")
    return value
