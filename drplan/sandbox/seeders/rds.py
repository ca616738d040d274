"""Seeders of the RDS actions: the source DB instances and clusters, their snapshots, and the subnet
and parameter groups a plan names, so a restore has something to restore from."""

from __future__ import annotations

from drplan.actions._aws import is_not_found, unresolved
from drplan.actions.base import suffixed
from drplan.actions.rds.lookup import (
    CLUSTER_SNAPSHOT,
    DB_SNAPSHOT,
    MULTI_AZ_ENGINES,
    describe_cluster,
    describe_instance,
    list_snapshots,
)
from drplan.sandbox.seeders.context import SeedContext

#: Engine version and parameter group family of what the seed creates.
SEED_ENGINES = {
    "postgres": ("16.4", "postgres16"),
    "mysql": ("8.0.39", "mysql8.0"),
    "aurora-postgresql": ("16.4", "aurora-postgresql16"),
    "aurora-mysql": ("8.0.mysql_aurora.3.07.1", "aurora-mysql8.0"),
}
SEED_LOGIN = {"MasterUsername": "drplan", "MasterUserPassword": "sandbox-only-1"}


def seed_placement(ctx: SeedContext, engine: str, *, cluster: bool) -> None:
    """The subnet group and parameter group the plan names, so the restore can use them."""
    rds = ctx.client("rds")
    group = ctx.params.get("subnet_group")
    if group and not unresolved(group):
        try:
            rds.describe_db_subnet_groups(DBSubnetGroupName=group)
        except Exception as exc:
            if not is_not_found(exc):
                raise
            ec2 = ctx.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.90.0.0/16")["Vpc"]["VpcId"]
            subnets = [
                ec2.create_subnet(
                    VpcId=vpc, CidrBlock=f"10.90.{i}.0/24", AvailabilityZone=f"{ctx.region}{zone}"
                )
                for i, zone in enumerate("ab")
            ]
            rds.create_db_subnet_group(
                DBSubnetGroupName=group,
                DBSubnetGroupDescription="drplan sandbox",
                SubnetIds=[s["Subnet"]["SubnetId"] for s in subnets],
            )
    params = ctx.params.get("parameter_group")
    if params and not unresolved(params):
        kind = "db_cluster_parameter_group" if cluster else "db_parameter_group"
        key = "DBClusterParameterGroup" if cluster else "DBParameterGroup"
        try:  # moto answers an empty list where AWS says DBParameterGroupNotFound
            exists = bool(getattr(rds, f"describe_{kind}s")(**{f"{key}Name": params}).get(f"{key}s"))
        except Exception as exc:
            if not is_not_found(exc):
                raise
            exists = False
        if not exists:
            family = SEED_ENGINES[engine][1]
            getattr(rds, f"create_{kind}")(
                **{f"{key}Name": params}, DBParameterGroupFamily=family, Description="drplan sandbox"
            )


def seed_instance(ctx: SeedContext, name: str, engine: str) -> None:
    if describe_instance(ctx, name) is None:
        ctx.client("rds").create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t4g.micro",
            Engine=engine,
            EngineVersion=SEED_ENGINES[engine][0],
            AllocatedStorage=20,
            DBName="app",
            BackupRetentionPeriod=7,
            Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
            **SEED_LOGIN,
        )


def seed_point_in_time(ctx: SeedContext) -> None:
    """The source DB instance of ``aws.rds.restore_point_in_time``."""
    source = ctx.params.get("source_instance")
    if not source or unresolved(source):
        return
    engine = "mysql" if ctx.params.get("port") == 3306 else "postgres"
    seed_placement(ctx, engine, cluster=False)
    seed_instance(ctx, str(source), engine)


def seed_snapshot(ctx: SeedContext) -> None:
    """The source DB instance and DB snapshot of ``aws.rds.restore_snapshot``."""
    wanted = str(ctx.params.get("snapshot", "latest"))
    source = ctx.params.get("source_instance")
    if unresolved(wanted) or unresolved(source):
        return
    name = wanted.split(":snapshot:", 1)[-1]
    if name.startswith("rds:"):
        return  # automated snapshots cannot be made on demand
    engine = "mysql" if ctx.params.get("port") == 3306 else "postgres"
    source = source or suffixed(name, "-source")
    seed_placement(ctx, engine, cluster=False)
    seed_instance(ctx, str(source), engine)
    manual = list_snapshots(ctx, DB_SNAPSHOT, DBInstanceIdentifier=source, SnapshotType="manual")
    if wanted == "latest":
        if manual:
            return
        name = suffixed(str(source), "-seed")
    elif any(s["DBSnapshotIdentifier"] == name.lower() for s in manual):
        return
    ctx.client("rds").create_db_snapshot(DBInstanceIdentifier=source, DBSnapshotIdentifier=name)


def seed_cluster_snapshot(ctx: SeedContext) -> None:
    """The source DB cluster and cluster snapshot of ``aws.rds.restore_cluster_snapshot``."""
    wanted = str(ctx.params.get("snapshot", "latest"))
    source = ctx.params.get("source_cluster")
    if unresolved(wanted) or unresolved(source):
        return
    name = wanted.split(":cluster-snapshot:", 1)[-1]
    if name.startswith("rds:"):
        return  # automated snapshots cannot be made on demand
    engine = str(ctx.params.get("engine") or "aurora-postgresql")
    source = str(source or suffixed(name, "-source"))
    seed_placement(ctx, engine, cluster=True)
    rds = ctx.client("rds")
    if describe_cluster(ctx, source) is None:
        # A Multi-AZ DB cluster (mysql, postgres) brings its own instances; Aurora gets a writer.
        multi_az = {
            "DBClusterInstanceClass": "db.m6gd.large",
            "AllocatedStorage": 100,
            "StorageType": "io1",
            "Iops": 1000,
        }
        rds.create_db_cluster(
            DBClusterIdentifier=source,
            Engine=engine,
            EngineVersion=SEED_ENGINES[engine][0],
            DatabaseName="app",
            BackupRetentionPeriod=7,
            Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
            **SEED_LOGIN,
            **(multi_az if engine in MULTI_AZ_ENGINES else {}),
        )
        if engine not in MULTI_AZ_ENGINES:
            rds.create_db_instance(
                DBInstanceIdentifier=suffixed(source, "-seed-1"),
                DBClusterIdentifier=source,
                DBInstanceClass="db.t4g.medium",
                Engine=engine,
            )
    manual = list_snapshots(ctx, CLUSTER_SNAPSHOT, DBClusterIdentifier=source, SnapshotType="manual")
    if wanted == "latest":
        if manual:
            return
        name = suffixed(source, "-seed")
    elif any(s["DBClusterSnapshotIdentifier"] == name.lower() for s in manual):
        return
    rds.create_db_cluster_snapshot(DBClusterIdentifier=source, DBClusterSnapshotIdentifier=name)


def seed_read_replica(ctx: SeedContext) -> None:
    """The read replica ``aws.rds.promote_read_replica`` promotes, and the instance it replicates:
    ``source_instance`` (an ARN puts it in its own Region, as a cross-Region source), else
    ``<instance>-source`` in the step's Region."""
    instance = ctx.params.get("instance")
    source = ctx.params.get("source_instance")
    if not instance or unresolved(instance) or unresolved(source):
        return
    if describe_instance(ctx, str(instance)) is not None:
        return
    engine = "postgres"
    if source and str(source).startswith("arn:"):
        parts = str(source).split(":")
        region, name = parts[3], parts[-1]
    else:
        region, name = ctx.region, str(source or suffixed(str(instance), "-source"))
    primary_rds = ctx.aws.client("rds", region=region, role_arn=ctx.step.role_arn)
    try:
        primary = primary_rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    except Exception as exc:
        if not is_not_found(exc):
            raise
        primary = primary_rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t4g.micro",
            Engine=engine,
            EngineVersion=SEED_ENGINES[engine][0],
            AllocatedStorage=20,
            DBName="app",
            BackupRetentionPeriod=7,  # a source of replicas keeps automated backups
            Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
            **SEED_LOGIN,
        )["DBInstance"]
    ctx.client("rds").create_db_instance_read_replica(
        DBInstanceIdentifier=str(instance),
        SourceDBInstanceIdentifier=name if region == ctx.region else primary["DBInstanceArn"],
        DBInstanceClass="db.t4g.micro",
        Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
    )
