"""Find what an estate has to recover: the resources carrying given tags, with their backups.

The Resource Groups Tagging API (``GetResources``) finds tagged resources of every service in one
region; a describe call per resource then reads what a restore needs (instance class, subnet
group, the newest snapshot, whether point-in-time recovery is on). Two kinds are also listed
directly, because the Tagging API does not always return them (it is regional and Route 53 is not;
emulators omit Auto Scaling groups): hosted zones (``ListTagsForResources``) and Auto Scaling
groups (``DescribeAutoScalingGroups`` with tag filters). Everything found is deduplicated by name.

Nothing here is invented: a resource is reported only when AWS listed it with the tags and its
describe call found it. Whatever cannot be drafted (a kind no drplan action restores, a bucket
without versioning, a resource drplan itself created) is returned as :class:`Skipped` with the
reason, so ``drplan init`` can say what it left out. Every call is read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from drplan.actions.backup.targets import TYPES as BACKUP_RESTORE_TYPES
from drplan.aws import AwsAccess, describe_error, is_not_found
from drplan.errors import AwsError

#: Tags drplan puts on what it creates: such resources are drill copies or restores, never sources.
DRPLAN_TAG = "drplan:run-id"

#: Engines of ``aws.rds.restore_cluster_snapshot`` (Aurora and Multi-AZ DB clusters). DocumentDB
#: and Neptune clusters are listed by the RDS API too; only AWS Backup restores them here.
CLUSTER_ENGINES = ("aurora", "aurora-mysql", "aurora-postgresql", "mysql", "postgres")

#: AWS Backup resource types that ``aws.backup.restore`` restores (its own list).
BACKUP_TYPES = tuple(BACKUP_RESTORE_TYPES)


@dataclass(frozen=True)
class TagFilter:
    """``--tag KEY=VALUE`` (or ``--tag KEY``: the key with any value). Several filters must all match."""

    key: str
    value: str | None = None

    def matches(self, tags: Mapping[str, str]) -> bool:
        return self.key in tags and (self.value is None or tags[self.key] == self.value)

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


@dataclass(frozen=True)
class Backup:
    """A recovery point found for a resource: a snapshot, an on-demand backup, a Backup point."""

    id: str
    created: datetime | None


@dataclass(frozen=True)
class RecoveryPoint:
    """An AWS Backup recovery point of a resource."""

    arn: str
    vault: str
    resource_arn: str
    resource_type: str
    created: datetime | None
    iam_role_arn: str | None


@dataclass(frozen=True)
class DbInstance:
    id: str
    arn: str
    engine: str
    instance_class: str
    storage_gib: int
    subnet_group: str | None
    security_groups: tuple[str, ...]
    automated_backups: bool  # BackupRetentionPeriod > 0: point-in-time restore is possible
    latest_snapshot: Backup | None
    backup_point: RecoveryPoint | None = None  # only looked for when there is no native backup


@dataclass(frozen=True)
class DbCluster:
    id: str
    arn: str
    engine: str
    instance_class: str | None  # of its writer (None: a cluster without instances)
    instances: int
    subnet_group: str | None
    security_groups: tuple[str, ...]
    latest_snapshot: Backup | None
    backup_point: RecoveryPoint | None = None


@dataclass(frozen=True)
class Table:
    name: str
    arn: str
    pitr: bool
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"]
    size_bytes: int
    latest_backup: Backup | None
    backup_point: RecoveryPoint | None = None


@dataclass(frozen=True)
class Volume:
    id: str
    arn: str
    name: str | None  # its Name tag
    availability_zone: str
    volume_type: str
    size_gib: int
    iops: int | None
    throughput: int | None
    attached_to: str | None  # "i-0123 as /dev/xvdf"
    latest_snapshot: Backup | None
    #: Tags that pick this volume's snapshots and no other's (None: its snapshots carry none that do).
    snapshot_tags: Mapping[str, str] | None
    backup_point: RecoveryPoint | None = None


@dataclass(frozen=True)
class Bucket:
    name: str
    arn: str
    region: str


@dataclass(frozen=True)
class HostedZone:
    id: str  # without /hostedzone/
    name: str  # without the final dot
    private: bool


@dataclass(frozen=True)
class AutoScalingGroup:
    name: str
    arn: str
    desired: int
    min: int
    max: int


@dataclass(frozen=True)
class BackupOnly:
    """A resource known only through AWS Backup: an EC2 instance or EFS file system (no native
    restore action), or a resource whose recovery points carry the tags but that no longer exists."""

    name: str
    resource_arn: str
    point: RecoveryPoint
    exists: bool


Found = DbInstance | DbCluster | Table | Volume | Bucket | HostedZone | AutoScalingGroup | BackupOnly


@dataclass(frozen=True)
class Skipped:
    what: str  # "lambda function orders-api" or an ARN
    reason: str


@dataclass
class Estate:
    """What discovery found in one region (and Route 53, which is global)."""

    region: str
    account: str | None
    tags: tuple[TagFilter, ...]
    found: list[Found] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # calls that failed: what may be missing
    vaults: list[str] = field(default_factory=list)  # tagged AWS Backup vaults


def _tags(items: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in items or ()}


def _newest(items: Iterable[Backup]) -> Backup | None:
    dated = [b for b in items if b.created is not None]
    return max(dated, key=lambda b: b.created or datetime.min.replace(tzinfo=timezone.utc), default=None)


def _arn_kind(arn: str) -> tuple[str, str, str]:
    """``(service, resource type, id)`` of an ARN: ``rds:db:orders``, ``ec2:volume:vol-1``."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return "", "", arn
    service, rest = parts[2], parts[5]
    if service == "s3" and "/" not in rest:
        return "s3", "bucket", rest
    if service == "autoscaling":
        return "autoscaling", "autoScalingGroup", rest.rsplit("autoScalingGroupName/", 1)[-1]
    if service == "backup" and rest.startswith("backup-vault:"):
        return "backup", "backup-vault", rest.split(":", 1)[1]
    for sep in ("/", ":"):
        if sep in rest:
            kind, _, ident = rest.partition(sep)
            return service, kind, ident.split("/")[0] if service == "dynamodb" else ident
    return service, rest, rest


#: Kinds that are backups of something else, or pieces of it: restored through their resource.
_PART_OF = {
    ("rds", "snapshot"): "a DB snapshot: drafted through the DB instance it belongs to",
    ("rds", "cluster-snapshot"): "a DB cluster snapshot: drafted through its cluster",
    ("ec2", "snapshot"): "an EBS snapshot: drafted through the volume it belongs to",
    ("backup", "recovery-point"): "a recovery point: drafted through the resource it protects",
}


class Discovery:
    """One discovery run: the clients, what was found, and what was left out."""

    def __init__(self, aws: AwsAccess, region: str, tags: tuple[TagFilter, ...]) -> None:
        self.aws = aws
        self.region = region
        self.estate = Estate(region, None, tags)
        self._seen: set[str] = set()

    def client(self, service: str, region: str | None = None) -> Any:
        return self.aws.client(service, region=region or self.region)

    def warn(self, what: str, exc: BaseException) -> None:
        self.estate.warnings.append(f"{what}: {describe_error(exc)}")

    def skip(self, what: str, reason: str) -> None:
        self.estate.skipped.append(Skipped(what, reason))

    def add(self, key: str, found: Found) -> None:
        if key not in self._seen:
            self._seen.add(key)
            self.estate.found.append(found)

    # --- listing ---------------------------------------------------------------------------------

    def tagged_arns(self) -> list[tuple[str, dict[str, str]]]:
        filters = [
            {"Key": t.key, **({"Values": [t.value]} if t.value is not None else {})} for t in self.estate.tags
        ]
        pages = self.client("resourcegroupstaggingapi").get_paginator("get_resources")
        out = []
        for page in pages.paginate(TagFilters=filters, ResourcesPerPage=100):
            for item in page.get("ResourceTagMappingList", []):
                out.append((str(item["ResourceARN"]), _tags(item.get("Tags"))))
        return sorted(out)

    def run(self) -> Estate:
        try:
            self.estate.account = str(self.client("sts").get_caller_identity()["Account"])
        except AwsError:
            raise  # no profile, no role to assume: nothing else would work either
        except Exception as exc:
            self.warn("cannot identify the account (aws.account_id left out)", exc)
        try:
            arns = self.tagged_arns()
        except Exception as exc:
            # Nothing can be found without it: the caller turns this into an error.
            raise DiscoveryFailed(f"the Resource Groups Tagging API failed: {describe_error(exc)}") from exc
        for arn, tags in arns:
            self.classify(arn, tags)
        self.hosted_zones()
        self.autoscaling_groups()
        self.backup_vaults()
        return self.estate

    def classify(self, arn: str, tags: Mapping[str, str]) -> None:
        service, kind, ident = _arn_kind(arn)
        if DRPLAN_TAG in tags:
            self.skip(
                arn, f"created by drplan (run {tags[DRPLAN_TAG]}): a drill copy or a restore, not a source"
            )
            return
        handlers: dict[tuple[str, str], Callable[[str, str], None]] = {
            ("rds", "db"): self.db_instance,
            ("rds", "cluster"): self.db_cluster,
            ("dynamodb", "table"): self.table,
            ("ec2", "volume"): self.volume,
            ("s3", "bucket"): self.bucket,
            ("route53", "hostedzone"): self.hosted_zone_by_id,
            ("autoscaling", "autoScalingGroup"): self.autoscaling_group,
            ("backup", "backup-vault"): lambda _arn, name: self.estate.vaults.append(name),
            ("ec2", "instance"): lambda a, i: self.backup_only(a, i, "EC2 instance"),
            ("elasticfilesystem", "file-system"): lambda a, i: self.backup_only(a, i, "EFS file system"),
        }
        handler = handlers.get((service, kind))
        if service == "dynamodb" and "/backup/" in arn:
            self.skip(arn, "a DynamoDB backup: drafted through its table")
        elif handler is not None:
            handler(arn, ident)
        elif (service, kind) in _PART_OF:
            self.skip(arn, _PART_OF[(service, kind)])
        else:
            self.skip(
                arn, "drplan has no action that restores this kind of resource (`drplan actions` lists them)"
            )

    # --- RDS -------------------------------------------------------------------------------------

    def db_instance(self, arn: str, ident: str) -> None:
        rds = self.client("rds")
        try:
            db = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
        except Exception as exc:
            self._gone_or_warn(f"DB instance {ident}", exc)
            return
        if db.get("DBClusterIdentifier"):
            self.skip(
                f"DB instance {ident}",
                f"an instance of cluster {db['DBClusterIdentifier']}: drafted with its cluster when the cluster has the tags",
            )
            return
        source = db.get("ReadReplicaSourceDBInstanceIdentifier")
        if source:
            self.skip(
                f"DB instance {ident}",
                f"a read replica of {source}: a Region failover promotes it (aws.rds.promote_read_replica): add that step by hand if the plan should",
            )
            return
        snapshots: list[Backup] = []
        try:
            for page in rds.get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=ident):
                snapshots += [
                    Backup(str(s["DBSnapshotIdentifier"]), s.get("SnapshotCreateTime"))
                    for s in page.get("DBSnapshots", [])
                    if s.get("Status") == "available"
                ]
        except Exception as exc:
            self.warn(f"cannot list the snapshots of DB instance {ident}", exc)
        subnet = (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
        found = DbInstance(
            id=ident,
            arn=str(db["DBInstanceArn"]),
            engine=str(db.get("Engine", "")),
            instance_class=str(db.get("DBInstanceClass", "")),
            storage_gib=int(db.get("AllocatedStorage") or 0),
            subnet_group=str(subnet) if subnet else None,
            security_groups=tuple(
                str(g["VpcSecurityGroupId"])
                for g in db.get("VpcSecurityGroups", [])
                if g.get("VpcSecurityGroupId")
            ),
            automated_backups=int(db.get("BackupRetentionPeriod") or 0) > 0,
            latest_snapshot=_newest(snapshots),
        )
        if found.latest_snapshot is None and not found.automated_backups:
            found = replace(found, backup_point=self.recovery_point_of(found.arn))
        self.add(f"rds:db:{ident}", found)

    def db_cluster(self, arn: str, ident: str) -> None:
        rds = self.client("rds")
        try:
            cluster = rds.describe_db_clusters(DBClusterIdentifier=ident)["DBClusters"][0]
        except Exception as exc:
            self._gone_or_warn(f"DB cluster {ident}", exc)
            return
        engine = str(cluster.get("Engine", ""))
        if engine not in CLUSTER_ENGINES:
            self.skip(
                f"DB cluster {ident}",
                f"engine {engine}: drplan restores Aurora and Multi-AZ DB clusters only",
            )
            return
        members = cluster.get("DBClusterMembers", [])
        writer = next((m for m in members if m.get("IsClusterWriter")), members[0] if members else None)
        instance_class = None
        if writer is not None:
            try:
                member = rds.describe_db_instances(DBInstanceIdentifier=writer["DBInstanceIdentifier"])
                instance_class = str(member["DBInstances"][0].get("DBInstanceClass") or "") or None
            except Exception as exc:
                self.warn(f"cannot describe the writer of DB cluster {ident}", exc)
        snapshots: list[Backup] = []
        try:
            for page in rds.get_paginator("describe_db_cluster_snapshots").paginate(
                DBClusterIdentifier=ident
            ):
                snapshots += [
                    Backup(str(s["DBClusterSnapshotIdentifier"]), s.get("SnapshotCreateTime"))
                    for s in page.get("DBClusterSnapshots", [])
                    if s.get("Status") == "available"
                ]
        except Exception as exc:
            self.warn(f"cannot list the snapshots of DB cluster {ident}", exc)
        found = DbCluster(
            id=ident,
            arn=str(cluster["DBClusterArn"]),
            engine=engine,
            instance_class=instance_class,
            instances=max(1, min(16, len(members))),
            subnet_group=str(cluster["DBSubnetGroup"]) if cluster.get("DBSubnetGroup") else None,
            security_groups=tuple(
                str(g["VpcSecurityGroupId"])
                for g in cluster.get("VpcSecurityGroups", [])
                if g.get("VpcSecurityGroupId")
            ),
            latest_snapshot=_newest(snapshots),
        )
        if found.latest_snapshot is None:
            found = replace(found, backup_point=self.recovery_point_of(found.arn))
        self.add(f"rds:cluster:{ident}", found)

    # --- DynamoDB --------------------------------------------------------------------------------

    def table(self, arn: str, name: str) -> None:
        ddb = self.client("dynamodb")
        try:
            table = ddb.describe_table(TableName=name)["Table"]
        except Exception as exc:
            self._gone_or_warn(f"DynamoDB table {name}", exc)
            return
        pitr = False
        try:
            continuous = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
            status = continuous.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
            pitr = status == "ENABLED"
        except Exception as exc:
            self.warn(f"cannot read whether point-in-time recovery is on for table {name}", exc)
        backups: list[Backup] = []
        try:
            start: dict[str, Any] = {}
            while True:
                page = ddb.list_backups(TableName=name, **start)
                backups += [
                    Backup(str(b["BackupArn"]), b.get("BackupCreationDateTime"))
                    for b in page.get("BackupSummaries", [])
                    if b.get("BackupStatus") == "AVAILABLE"
                ]
                if not page.get("LastEvaluatedBackupArn"):
                    break
                start = {"ExclusiveStartBackupArn": page["LastEvaluatedBackupArn"]}
        except Exception as exc:
            self.warn(f"cannot list the on-demand backups of table {name}", exc)
        mode = (table.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"
        found = Table(
            name=name,
            arn=str(table["TableArn"]),
            pitr=pitr,
            billing_mode="PAY_PER_REQUEST" if mode == "PAY_PER_REQUEST" else "PROVISIONED",
            size_bytes=int(table.get("TableSizeBytes") or 0),
            latest_backup=_newest(backups),
        )
        if not pitr and found.latest_backup is None:
            found = replace(found, backup_point=self.recovery_point_of(found.arn))
        self.add(f"dynamodb:table:{name}", found)

    # --- EBS -------------------------------------------------------------------------------------

    def volume(self, arn: str, ident: str) -> None:
        ec2 = self.client("ec2")
        try:
            volume = ec2.describe_volumes(VolumeIds=[ident])["Volumes"][0]
        except Exception as exc:
            self._gone_or_warn(f"EBS volume {ident}", exc)
            return
        tags = _tags(volume.get("Tags"))
        snapshots: list[tuple[Backup, dict[str, str]]] = []
        try:
            pages = ec2.get_paginator("describe_snapshots").paginate(
                OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": [ident]}]
            )
            for page in pages:
                snapshots += [
                    (Backup(str(s["SnapshotId"]), s.get("StartTime")), _tags(s.get("Tags")))
                    for s in page.get("Snapshots", [])
                    if s.get("State") == "completed"
                ]
        except Exception as exc:
            self.warn(f"cannot list the snapshots of volume {ident}", exc)
        latest = _newest(b for b, _ in snapshots)
        selecting = None
        if latest is not None:
            own = next(t for b, t in snapshots if b == latest)
            selecting = self._selecting_tags(
                ident, {k: v for k, v in own.items() if not k.startswith("aws:")}
            )
        attachment = next(iter(volume.get("Attachments") or []), None)
        vtype = str(volume.get("VolumeType", "gp3"))
        found = Volume(
            id=ident,
            arn=arn,
            name=tags.get("Name"),
            availability_zone=str(volume["AvailabilityZone"]),
            volume_type=vtype,
            size_gib=int(volume.get("Size") or 0),
            iops=int(volume["Iops"]) if volume.get("Iops") and vtype in ("io1", "io2", "gp3") else None,
            throughput=int(volume["Throughput"]) if volume.get("Throughput") and vtype == "gp3" else None,
            attached_to=f"{attachment['InstanceId']} as {attachment['Device']}" if attachment else None,
            latest_snapshot=latest,
            snapshot_tags=selecting,
        )
        if latest is None:
            found = replace(found, backup_point=self.recovery_point_of(found.arn))
        self.add(f"ec2:volume:{ident}", found)

    def _selecting_tags(self, volume: str, tags: Mapping[str, str]) -> dict[str, str] | None:
        """``tags`` when the snapshots carrying all of them are all this volume's (so `latest` with
        these `snapshot_tags` can never pick another volume's snapshot)."""
        if not tags:
            return None
        try:
            filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
            pages = (
                self.client("ec2")
                .get_paginator("describe_snapshots")
                .paginate(OwnerIds=["self"], Filters=filters)
            )
            volumes = {str(s.get("VolumeId")) for page in pages for s in page.get("Snapshots", [])}
        except Exception as exc:
            self.warn(f"cannot check which snapshots the tags of volume {volume}'s snapshots select", exc)
            return None
        return dict(tags) if volumes == {volume} else None

    # --- S3 --------------------------------------------------------------------------------------

    def bucket(self, arn: str, name: str) -> None:
        s3 = self.client("s3")
        try:
            status = s3.get_bucket_versioning(Bucket=name).get("Status")
            location = s3.get_bucket_location(Bucket=name).get("LocationConstraint")
        except Exception as exc:
            self._gone_or_warn(f"S3 bucket {name}", exc)
            return
        if status != "Enabled":
            why = "versioning is suspended" if status == "Suspended" else "it is not versioned"
            self.skip(
                f"S3 bucket {name}",
                f"{why}: aws.s3.restore_versions rewinds versioned buckets only (enable versioning, or protect it with AWS Backup)",
            )
            return
        region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, str(location))
        self.add(f"s3:bucket:{name}", Bucket(name, arn, region))

    # --- Route 53 and Auto Scaling (also listed directly) -----------------------------------------

    def hosted_zones(self) -> None:
        r53 = self.client("route53")
        try:
            zones = [
                z for page in r53.get_paginator("list_hosted_zones").paginate() for z in page["HostedZones"]
            ]
            by_id = {str(z["Id"]).rsplit("/", 1)[-1]: z for z in zones}
            ids = sorted(by_id)
            for start in range(0, len(ids), 10):  # the API takes 10 zones a call
                answer = r53.list_tags_for_resources(
                    ResourceType="hostedzone", ResourceIds=ids[start : start + 10]
                )
                for tagset in answer.get("ResourceTagSets", []):
                    tags = _tags(tagset.get("Tags"))
                    if all(t.matches(tags) for t in self.estate.tags):
                        self._add_zone(by_id[str(tagset["ResourceId"])])
        except Exception as exc:
            self.warn("cannot list the hosted zones and their tags (Route 53)", exc)

    def hosted_zone_by_id(self, arn: str, ident: str) -> None:
        try:
            self._add_zone(self.client("route53").get_hosted_zone(Id=ident)["HostedZone"])
        except Exception as exc:
            self._gone_or_warn(f"hosted zone {ident}", exc)

    def _add_zone(self, zone: Mapping[str, Any]) -> None:
        ident = str(zone["Id"]).rsplit("/", 1)[-1]
        private = bool((zone.get("Config") or {}).get("PrivateZone"))
        self.add(f"route53:{ident}", HostedZone(ident, str(zone["Name"]).rstrip("."), private))

    def autoscaling_groups(self) -> None:
        filters = [
            {"Name": f"tag:{t.key}", "Values": [t.value]}
            if t.value is not None
            else {"Name": "tag-key", "Values": [t.key]}
            for t in self.estate.tags
        ]
        try:
            pages = (
                self.client("autoscaling")
                .get_paginator("describe_auto_scaling_groups")
                .paginate(Filters=filters)
            )
            for page in pages:
                for group in page.get("AutoScalingGroups", []):
                    tags = _tags(group.get("Tags"))
                    if all(t.matches(tags) for t in self.estate.tags):  # the API's filters, checked again
                        self._add_group(group)
        except Exception as exc:
            self.warn("cannot list the Auto Scaling groups", exc)

    def autoscaling_group(self, arn: str, name: str) -> None:
        try:
            groups = self.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        except Exception as exc:
            self.warn(f"cannot describe Auto Scaling group {name}", exc)
            return
        for group in groups.get("AutoScalingGroups", []):
            self._add_group(group)

    def _add_group(self, group: Mapping[str, Any]) -> None:
        name = str(group["AutoScalingGroupName"])
        if DRPLAN_TAG in _tags(group.get("Tags")):
            return
        self.add(
            f"autoscaling:{name}",
            AutoScalingGroup(
                name,
                str(group.get("AutoScalingGroupARN", "")),
                int(group.get("DesiredCapacity", 0)),
                int(group.get("MinSize", 0)),
                int(group.get("MaxSize", 0)),
            ),
        )

    # --- AWS Backup ------------------------------------------------------------------------------

    def recovery_point_of(self, resource_arn: str) -> RecoveryPoint | None:
        """The newest completed AWS Backup recovery point of a resource that has no native backup."""
        try:
            pages = self.client("backup").get_paginator("list_recovery_points_by_resource")
            points = [
                _point(p, resource_arn)
                for page in pages.paginate(ResourceArn=resource_arn)
                for p in page.get("RecoveryPoints", [])
                if p.get("Status") == "COMPLETED"
            ]
        except Exception as exc:
            self.warn(f"cannot list the AWS Backup recovery points of {resource_arn}", exc)
            return None
        newest = _newest_point(points)
        if newest is None:
            return None
        # Listed by resource, a point has no role or type: its description does.
        try:
            described = self.client("backup").describe_recovery_point(
                BackupVaultName=newest.vault, RecoveryPointArn=newest.arn
            )
        except Exception as exc:
            self.warn(f"cannot describe recovery point {newest.arn}", exc)
            described = {}
        return replace(
            newest,
            resource_type=str(
                described.get("ResourceType") or newest.resource_type or _backup_type(resource_arn)
            ),
            iam_role_arn=str(described["IamRoleArn"]) if described.get("IamRoleArn") else newest.iam_role_arn,
        )

    def backup_only(self, arn: str, ident: str, noun: str) -> None:
        point = self.recovery_point_of(arn)
        if point is None:
            self.skip(
                f"{noun} {ident}",
                "no drplan action restores it except aws.backup.restore, and it has no AWS Backup recovery point",
            )
            return
        self.add(f"backup:{arn}", BackupOnly(ident, arn, point, exists=True))

    def backup_vaults(self) -> None:
        """Recovery points in tagged vaults whose resource was not found, but that carry the tags
        themselves (AWS Backup copies a resource's tags): the resource may be gone, its backups are not."""
        known = {_arn_of(f) for f in self.estate.found}
        backup = self.client("backup")
        for vault in self.estate.vaults:
            try:
                pages = backup.get_paginator("list_recovery_points_by_backup_vault")
                points = [
                    p
                    for page in pages.paginate(BackupVaultName=vault)
                    for p in page.get("RecoveryPoints", [])
                ]
            except Exception as exc:
                self.warn(f"cannot list the recovery points in backup vault {vault}", exc)
                continue
            untagged: set[str] = set()
            by_resource: dict[str, list[RecoveryPoint]] = {}
            for raw in points:
                resource = str(raw.get("ResourceArn", ""))
                if raw.get("Status") != "COMPLETED" or resource in known:
                    continue
                try:
                    tags = {
                        str(k): str(v)
                        for k, v in backup.list_tags(ResourceArn=raw["RecoveryPointArn"])
                        .get("Tags", {})
                        .items()
                    }
                except Exception:
                    tags = {}
                if all(t.matches(tags) for t in self.estate.tags) and DRPLAN_TAG not in tags:
                    by_resource.setdefault(resource, []).append(_point(raw, resource))
                else:
                    untagged.add(resource)
            for resource, found in sorted(by_resource.items()):
                point = _newest_point(found)
                if point is None or point.resource_type not in BACKUP_TYPES:
                    self.skip(
                        resource,
                        f"recovery points of type {found[0].resource_type}, which aws.backup.restore does not restore",
                    )
                    continue
                self.add(
                    f"backup:{resource}", BackupOnly(_native_name(resource), resource, point, exists=False)
                )
            if untagged:
                self.skip(
                    f"backup vault {vault}",
                    f"recovery points of {len(untagged)} resource(s) that do not carry the tags themselves: not drafted",
                )

    def _gone_or_warn(self, what: str, exc: BaseException) -> None:
        if is_not_found(exc):
            self.skip(what, "listed by the Tagging API but not found (deleted, or the tag index is behind)")
        else:
            self.warn(f"cannot describe {what}", exc)


class DiscoveryFailed(Exception):
    """Discovery could not list anything at all."""


def _point(raw: Mapping[str, Any], resource_arn: str) -> RecoveryPoint:
    return RecoveryPoint(
        arn=str(raw["RecoveryPointArn"]),
        vault=str(raw.get("BackupVaultName", "")),
        resource_arn=resource_arn,
        resource_type=str(raw.get("ResourceType", "")),
        created=raw.get("CreationDate"),
        iam_role_arn=str(raw["IamRoleArn"]) if raw.get("IamRoleArn") else None,
    )


def _newest_point(points: Iterable[RecoveryPoint]) -> RecoveryPoint | None:
    dated = [p for p in points if p.created is not None and p.vault]
    return max(dated, key=lambda p: p.created or datetime.min.replace(tzinfo=timezone.utc), default=None)


def _backup_type(arn: str) -> str:
    from drplan.actions.backup.targets import type_from_arn

    return type_from_arn(arn) or ""


def _native_name(arn: str) -> str:
    from drplan.resources import native_id

    return native_id(arn)


def _arn_of(found: Found) -> str:
    if isinstance(found, (DbInstance, DbCluster, Table, Volume, Bucket)):
        return found.arn
    if isinstance(found, BackupOnly):
        return found.resource_arn
    return ""


def discover(aws: AwsAccess, region: str, tags: tuple[TagFilter, ...]) -> Estate:
    """Every resource in ``region`` (and hosted zone) carrying all of ``tags``, with its backups."""
    return Discovery(aws, region, tags).run()
