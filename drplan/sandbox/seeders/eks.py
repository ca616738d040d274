"""The seeder of ``aws.eks.scale_nodegroup``: the cluster, and the managed node group at size 0."""

from __future__ import annotations

from drplan.actions._aws import unresolved
from drplan.actions.eks.nodegroup import describe_nodegroup
from drplan.aws import is_not_found
from drplan.sandbox.seeders.context import SeedContext


def seed_nodegroup(ctx: SeedContext) -> None:
    """The cluster and a node group with no nodes (min 0, desired 0), with room for the plan's sizes."""
    cluster, name = ctx.params.get("cluster"), ctx.params.get("nodegroup")
    if not cluster or not name or unresolved(cluster) or unresolved(name):
        return
    cluster, name = str(cluster), str(name)
    if describe_nodegroup(ctx, cluster, name) is not None:
        return
    eks = ctx.client("eks")
    account = ctx.client("sts").get_caller_identity()["Account"]
    subnets = {"subnetIds": [f"subnet-{ctx.region.replace('-', '')}a"]}
    try:
        eks.describe_cluster(name=cluster)
    except Exception as exc:
        if not is_not_found(exc):
            raise
        eks.create_cluster(
            name=cluster, roleArn=f"arn:aws:iam::{account}:role/{cluster}-cluster", resourcesVpcConfig=subnets
        )
    sizes = [v for v in (ctx.params.get("max"), ctx.params.get("desired")) if isinstance(v, int)]
    eks.create_nodegroup(
        clusterName=cluster,
        nodegroupName=name,
        nodeRole=f"arn:aws:iam::{account}:role/{name}-nodes",
        subnets=subnets["subnetIds"],
        scalingConfig={"minSize": 0, "maxSize": max([*sizes, 1]) if sizes else 10, "desiredSize": 0},
    )
