"""What an ARC Region switch plan needs that a drplan plan does not say: the plan's execution role,
its two Regions and its recovery approach (required), and the ARNs drplan cannot work out from the
names a plan uses (``--arn``, ``--peer``). Built from the command line's options and checked here,
so every missing or malformed input is reported at once, before anything is translated.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from drplan.errors import UsageError

Approach = Literal["activePassive", "activeActive"]
APPROACHES: tuple[Approach, ...] = ("activePassive", "activeActive")

#: ARC's own patterns (botocore's arc-region-switch model): checked before anything else so that a
#: typo is reported as the option's, not as a failed validation of the request.
ROLE_ARN = re.compile(r"arn:aws[a-zA-Z0-9-]*:iam::([0-9]{12}):role/.+")
REGION = re.compile(r"[a-z]{2}-[a-z-]+-\d+")
ACCOUNT = re.compile(r"\d{12}")
PLAN_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,30}[a-zA-Z0-9])?")


@dataclass(frozen=True)
class Settings:
    execution_role: str
    primary_region: str
    recovery_region: str
    approach: Approach
    name: str | None = None  # the ARC plan's name (default: from the drplan plan's name)
    account_id: str | None = None  # for ARNs drplan derives (default: plan, else the role's account)
    approval_role: str | None = None  # the role approvers use in ManualApproval steps
    arns: Mapping[str, str] = field(default_factory=dict)  # step key -> its resource's ARN
    peers: Mapping[str, str] = field(
        default_factory=dict
    )  # step key -> the same resource in the other Region

    @property
    def role_account(self) -> str:
        match = ROLE_ARN.fullmatch(self.execution_role)
        assert match is not None  # checked by settings()
        return match.group(1)


def settings(
    *,
    execution_role: str | None,
    primary_region: str | None,
    recovery_region: str | None,
    approach: str | None,
    name: str | None = None,
    account_id: str | None = None,
    approval_role: str | None = None,
    arns: Iterable[str] = (),
    peers: Iterable[str] = (),
) -> Settings:
    """The settings, or :class:`~drplan.errors.UsageError` naming every missing or malformed one."""
    problems: list[str] = []
    missing = [
        option
        for option, value in (
            ("--execution-role", execution_role),
            ("--primary-region", primary_region),
            ("--recovery-region", recovery_region),
            ("--recovery-approach", approach),
        )
        if not value
    ]
    if missing:
        problems.append(
            f"missing {', '.join(missing)}: an ARC Region switch plan needs them and a drplan plan does not say them"
        )
    if execution_role and not ROLE_ARN.fullmatch(execution_role):
        problems.append(
            f"--execution-role {execution_role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )
    if approval_role and not ROLE_ARN.fullmatch(approval_role):
        problems.append(
            f"--approval-role {approval_role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )
    for option, region in (("--primary-region", primary_region), ("--recovery-region", recovery_region)):
        if region and not REGION.fullmatch(region):
            problems.append(f"{option} {region!r} is not a Region name (such as us-east-1)")
    if primary_region and primary_region == recovery_region:
        problems.append("--primary-region and --recovery-region must be two different Regions")
    if approach and approach not in APPROACHES:
        problems.append(f"--recovery-approach must be one of {', '.join(APPROACHES)}, not {approach!r}")
    if account_id and not ACCOUNT.fullmatch(account_id):
        problems.append(f"--account-id {account_id!r} is not a 12-digit account id")
    if name and not PLAN_NAME.fullmatch(name):
        problems.append(
            f"--name {name!r}: ARC plan names are 1 to 32 letters, digits and hyphens, starting and ending "
            "with a letter or digit"
        )
    by_step: dict[str, dict[str, str]] = {}
    for option, values in (("--arn", arns), ("--peer", peers)):
        pairs = by_step.setdefault(option, {})
        for value in values:
            key, sep, arn = value.partition("=")
            if not sep or "." not in key or not arn.startswith("arn:"):
                problems.append(f"{option} {value!r} must be SERVICE.STEP=ARN")
                continue
            pairs[key] = arn
    if problems:
        raise UsageError(
            "cannot export to ARC Region switch:\n" + "\n".join(f"  {p}" for p in problems),
            hint="docs/arc-region-switch.md#the-command lists the options",
        )
    assert execution_role and primary_region and recovery_region
    chosen: Approach = "activeActive" if approach == "activeActive" else "activePassive"
    return Settings(
        execution_role=execution_role,
        primary_region=primary_region,
        recovery_region=recovery_region,
        approach=chosen,
        name=name,
        account_id=account_id,
        approval_role=approval_role,
        arns=by_step["--arn"],
        peers=by_step["--peer"],
    )
