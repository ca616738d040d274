"""The seeder of ``aws.backup.restore``: a recovery point in the sandbox's AWS Backup emulator.

moto has no recovery points, so the point is made by :mod:`drplan.sandbox.backup_emulator`, backed by
a native snapshot, backup or AMI of the resource type (see its ``EMULATED_TYPES``; a point of another
type is made too, and its restore job fails saying the sandbox cannot restore that type).
"""

from __future__ import annotations

from drplan.durations import parse_duration
from drplan.sandbox import BACKUP_AGE
from drplan.sandbox.seeders.context import SeedContext


def seed_recovery_point(ctx: SeedContext) -> None:
    """A completed recovery point of ``resource_arn`` in ``vault``, old enough to show an RPO and
    young enough for the step's ``max_age`` and the service's RPO."""
    params = ctx.params
    if ctx.backup is None:
        return  # no emulator to seed
    if params.get("recovery_point", "latest") != "latest" or "${" in str(params.get("vault", "")):
        return  # a fixed ARN cannot be recreated; the drill will report it missing
    rpo = ctx.objectives.rpo
    age = min(BACKUP_AGE, rpo / 2) if rpo else BACKUP_AGE
    max_age = params.get("max_age")
    if max_age and max_age != "rpo":
        age = min(age, parse_duration(max_age) / 2)
    ctx.backup.seed(
        region=ctx.region,
        vault=str(params["vault"]),
        resource_arn=str(params["resource_arn"]),
        resource_type=params.get("resource_type"),
        age=age,
        # The account the step restores in: a step's role_arn may be in a DR account, whose vault
        # holds copies (the account of the step's own credentials, as the emulator sees them).
        account=str(ctx.client("sts").get_caller_identity()["Account"]),
    )
