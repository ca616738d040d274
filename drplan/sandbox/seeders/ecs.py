"""The seeder of ``aws.ecs.set_capacity``: the cluster, and the service with no tasks running."""

from __future__ import annotations

from drplan.actions._aws import unresolved
from drplan.actions.ecs.capacity import describe_service, short_name
from drplan.sandbox.seeders.context import SeedContext


def seed_service(ctx: SeedContext) -> None:
    """The cluster and an ACTIVE service scaled to 0 (the Region's tier before a failover), with a
    task definition of its own."""
    cluster, service = ctx.params.get("cluster"), ctx.params.get("service")
    if not cluster or not service or unresolved(cluster) or unresolved(service):
        return
    cluster, service = short_name(cluster), short_name(service)
    found = describe_service(ctx, cluster, service)
    if found is not None and found.get("status") == "ACTIVE":
        return
    ecs = ctx.client("ecs")
    tags = [{"key": "drplan:seed", "value": ctx.step.key}]
    if not [
        c
        for c in ecs.describe_clusters(clusters=[cluster]).get("clusters", [])
        if c.get("status") == "ACTIVE"
    ]:
        # Tagged: the emulator's tagging API (what a sweep reads) fails on an ECS cluster without tags.
        ecs.create_cluster(clusterName=cluster, tags=tags)
    family = f"{service}-task"
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": service, "image": "public.ecr.aws/nginx/nginx:stable", "memory": 256}],
        tags=tags,
    )
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=family, desiredCount=0, tags=tags)
