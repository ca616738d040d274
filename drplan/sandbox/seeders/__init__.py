"""Sandbox seeders: what each action's step restores from, created in the emulated AWS.

The sandbox seeds from the plan before a run (:mod:`drplan.sandbox.seed`): for every step whose
action has a seeder, once with a recovery's parameters and once with a drill's (``drill_with``).
A seeder gets a :class:`SeedContext` (the step's context, clients of the emulated AWS, and the
``seed_state`` the seeders share) and creates what the step must find: a table with items and a
backup, a DB instance and its snapshot, a hosted zone and the record as it was. Seeders are
idempotent, and they may use the actions' public helpers; the actions know nothing of them.

An action from another package gets sandbox support by registering its seeder, next to its
``Action`` class (importing this module needs no boto3 or moto)::

    from drplan.sandbox.seeders import SeedContext, register

    def seed_cache(ctx: SeedContext) -> None:
        ctx.client("elasticache").create_cache_cluster(CacheClusterId=ctx.params["cluster"], ...)

    register("acme.cache.flush", seed_cache)
"""

from __future__ import annotations

from drplan.sandbox.global_emulator import seed_global_cluster
from drplan.sandbox.seeders import (
    autoscaling,
    awslambda,
    backup,
    cloudwatch,
    dynamodb,
    ec2,
    ecs,
    eks,
    rds,
    route53,
    s3,
)
from drplan.sandbox.seeders.context import SeedContext, Seeder

__all__ = ["SEEDERS", "SeedContext", "Seeder", "register"]

#: The seeder of each action, by action name.
SEEDERS: dict[str, Seeder] = {
    "aws.backup.restore": backup.seed_recovery_point,
    "aws.rds.restore_snapshot": rds.seed_snapshot,
    "aws.rds.restore_point_in_time": rds.seed_point_in_time,
    "aws.rds.restore_cluster_snapshot": rds.seed_cluster_snapshot,
    "aws.dynamodb.restore_backup": dynamodb.seed_backup,
    "aws.dynamodb.restore_point_in_time": dynamodb.seed_point_in_time,
    "aws.ec2.volume_from_snapshot": ec2.seed_volume_snapshot,
    "aws.s3.restore_versions": s3.seed_bucket,
    "aws.route53.change_record": route53.seed_zone_and_record,
    "aws.rds.promote_read_replica": rds.seed_read_replica,
    "aws.rds.switchover_global_cluster": seed_global_cluster,
    "aws.rds.failover_global_cluster": seed_global_cluster,
    "aws.autoscaling.set_capacity": autoscaling.seed_group,
    "aws.ecs.set_capacity": ecs.seed_service,
    "aws.eks.scale_nodegroup": eks.seed_nodegroup,
    "aws.lambda.invoke": awslambda.seed_function,
    "check.cloudwatch_alarm": cloudwatch.seed_alarm,
    "check.route53_health": route53.seed_health_check,
    # aws.arc.set_routing_control: none (see seeders/arc.py)
}
_BUILTIN = frozenset(SEEDERS)


def register(name: str, seeder: Seeder) -> None:
    """Seed the sandbox for action ``name`` with ``seeder`` (a later call for the same name replaces
    it). The seeders of drplan's own actions cannot be replaced."""
    if name in _BUILTIN:
        raise ValueError(f"{name} is one of drplan's actions; its sandbox seeder cannot be replaced")
    SEEDERS[name] = seeder
