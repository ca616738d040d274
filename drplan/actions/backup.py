"""AWS Backup: restore a resource from a recovery point.

The step picks a recovery point: ``latest`` is the newest one of ``resource_arn`` in ``vault``
(so the vault of the recovery region finds cross-region copies) whose status is COMPLETED or
AVAILABLE (AWS's newer name for a finished backup; PARTIAL, EXPIRED, STOPPED... are skipped); an
explicit ARN is described in ``vault`` (or in the vault ``resource_arn``'s recovery points name,
since every AWS Backup lookup needs the vault). It then starts one restore job and polls it.

AWS Backup creates the resource itself, so drplan shapes the job's *restore metadata*: it starts
from ``GetRecoveryPointRestoreMetadata`` (the resource's configuration when it was backed up),
names the new resource after ``target``, applies the step's ``metadata`` overrides last, then
drops the derived keys AWS would refuse next to them.

=========  ==============  =======================  ====================  ===========================
type       resource kind   ``target`` is set as     drplan also sets      removed (unless you set it)
=========  ==============  =======================  ====================  ===========================
RDS        rds:db          DBInstanceIdentifier     -                     AvailabilityZone [1]
Aurora     rds:cluster     DBClusterIdentifier      -                     -
DynamoDB   dynamodb:table  targetTableName          -                     -
EBS        ec2:volume      tag ``Name`` [2]         -                     -
EC2        ec2:instance    tag ``Name`` [2]         -                     NetworkInterfaces [3]
EFS        efs:filesystem  CreationToken            newFileSystem=true    -
S3         s3:bucket       DestinationBucketName    NewBucket=true        -
=========  ==============  =======================  ====================  ===========================

[1] when ``MultiAZ`` is ``true``: RDS refuses an availability zone for a Multi-AZ instance.
[2] restore metadata has no name for volumes and instances: drplan tags the result ``Name=target``.
[3] when you set ``SubnetId`` or ``SecurityGroupIds``: RunInstances refuses them next to the
    source's network interfaces.

The name key and the "new resource" flags cannot be overridden through ``metadata``: a drill
renames ``target`` to keep away from production, and drplan never restores into (nor, on undo,
deletes) a resource it did not create. Keys are matched case-insensitively, as AWS Backup does.

Notes per type: an Aurora restore creates the DB *cluster* only (AWS Backup adds no DB instances;
the ``endpoint`` output is the cluster endpoint, usable once a later step adds an instance). An
EFS restore puts the data in an ``aws-backup-restore_<timestamp>`` directory at the root of the
new file system. EBS and EC2 restores take the source's availability zone / subnet from the
metadata: restoring a cross-region copy needs ``metadata.availabilityZone`` (preflight warns).

AWS Backup takes no tags for the restored resource, so drplan tags it (run tags, step ``tags``)
once the job completes. Undo deletes what the job reports as ``CreatedResourceArn`` with the
resource's own service API (deletion protection of a resource drplan created is turned off
first), and verifies it is gone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from drplan.actions._aws import (
    add_resource,
    aws_tags,
    freshness_result,
    is_not_found,
    newest,
    recovery_point,
    require_fresh,
    target_free,
)
from drplan.actions.base import Action, Handle, Poll, PreflightResult, Resource, StepContext, suffixed
from drplan.aws import error_code
from drplan.errors import StepFailed

#: Recovery point states that can be restored (AVAILABLE is the newer name of a finished backup).
USABLE = ("COMPLETED", "AVAILABLE")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
#: Errors that mean "the resource is busy (creating, modifying, attached): delete it later".
BUSY = frozenset({
    "InvalidDBInstanceState", "InvalidDBClusterStateFault", "ResourceInUseException", "VolumeInUse",
    "IncorrectState", "IncorrectInstanceState", "FileSystemInUse", "BucketNotEmpty",
})  # fmt: skip
#: What StartRestoreJob says when the request itself is wrong (the user can act on it).
REFUSED = frozenset({
    "InvalidParameterValueException", "MissingParameterValueException", "InvalidRequestException",
    "ResourceNotFoundException",
})  # fmt: skip


# --- the native services: look up, tag and delete what a restore job created ----------------------


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))


def _missing(exc: BaseException) -> bool:
    return is_not_found(exc) or error_code(exc) == "404"  # S3 HeadBucket answers a bare 404


def _lookup(fn: Callable[[], Any]) -> Any:
    """``fn()``, or None when AWS says the resource does not exist."""
    try:
        return fn()
    except Exception as exc:
        if _missing(exc):
            return None
        raise


def _delete(call: Callable[[], Any], unprotect: Callable[[], Any] | None = None) -> None:
    """Issue a delete; "already gone" and "busy" are fine (the next verification retries), a
    deletion-protected resource (one drplan created) is unprotected first."""
    try:
        call()
    except Exception as exc:
        code = error_code(exc) or ""
        if _missing(exc) or code in BUSY:
            return
        if unprotect is not None and (code == "OperationNotPermitted" or "protect" in _message(exc).lower()):
            unprotect()  # the next verification deletes it
            return
        raise


def _db_instance(ctx: StepContext, name: str) -> dict[str, Any] | None:
    rds = ctx.client("rds")
    found: dict[str, Any] | None = _lookup(
        lambda: rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    )
    return found


def _db_cluster(ctx: StepContext, name: str) -> dict[str, Any] | None:
    rds = ctx.client("rds")
    found: dict[str, Any] | None = _lookup(
        lambda: rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
    )
    return found


def _table(ctx: StepContext, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = _lookup(
        lambda: ctx.client("dynamodb").describe_table(TableName=name)["Table"]
    )
    return found


def _bucket_exists(ctx: StepContext, name: str) -> bool:
    try:
        return _lookup(lambda: ctx.client("s3").head_bucket(Bucket=name)) is not None
    except Exception as exc:
        if error_code(exc) == "403":  # the name belongs to someone else's bucket
            return True
        raise


def _file_system_named(ctx: StepContext, token: str) -> bool:
    return bool(ctx.client("efs").describe_file_systems(CreationToken=token).get("FileSystems"))


def _remove_db_instance(ctx: StepContext, name: str) -> str | None:
    db = _db_instance(ctx, name)
    if db is None:
        return None
    rds = ctx.client("rds")
    if db.get("DBInstanceStatus") != "deleting":
        _delete(
            lambda: rds.delete_db_instance(
                DBInstanceIdentifier=name, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            ),
            lambda: rds.modify_db_instance(
                DBInstanceIdentifier=name, DeletionProtection=False, ApplyImmediately=True
            ),
        )
    return f"DB instance {name} is {db.get('DBInstanceStatus')}"


def _remove_db_cluster(ctx: StepContext, name: str) -> str | None:
    cluster = _db_cluster(ctx, name)
    if cluster is None:
        return None
    rds = ctx.client("rds")
    if cluster.get("Status") != "deleting":
        _delete(
            lambda: rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True),
            lambda: rds.modify_db_cluster(
                DBClusterIdentifier=name, DeletionProtection=False, ApplyImmediately=True
            ),
        )
    return f"DB cluster {name} is {cluster.get('Status')}"


def _remove_table(ctx: StepContext, name: str) -> str | None:
    table = _table(ctx, name)
    if table is None:
        return None
    ddb = ctx.client("dynamodb")
    if table.get("TableStatus") != "DELETING":
        _delete(
            lambda: ddb.delete_table(TableName=name),
            lambda: ddb.update_table(TableName=name, DeletionProtectionEnabled=False),
        )
    return f"table {name} is {table.get('TableStatus')}"


def _remove_volume(ctx: StepContext, volume_id: str) -> str | None:
    ec2 = ctx.client("ec2")
    volume = _lookup(lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])
    if volume is None or volume.get("State") == "deleted":
        return None
    if volume.get("State") != "deleting":
        _delete(lambda: ec2.delete_volume(VolumeId=volume_id))
    return f"volume {volume_id} is {volume.get('State')}"


def _remove_instance(ctx: StepContext, instance_id: str) -> str | None:
    ec2 = ctx.client("ec2")
    reservations = _lookup(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]) or []
    instances = [i for r in reservations for i in r.get("Instances", [])]
    state = instances[0].get("State", {}).get("Name") if instances else "terminated"
    if state == "terminated":
        return None
    if state != "shutting-down":
        _delete(
            lambda: ec2.terminate_instances(InstanceIds=[instance_id]),
            lambda: ec2.modify_instance_attribute(
                InstanceId=instance_id, DisableApiTermination={"Value": False}
            ),
        )
    return f"instance {instance_id} is {state}"


def _remove_file_system(ctx: StepContext, fs_id: str) -> str | None:
    efs = ctx.client("efs")
    fs = _lookup(lambda: efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0])
    if fs is None or fs.get("LifeCycleState") == "deleted":
        return None
    if fs.get("LifeCycleState") == "deleting":
        return f"file system {fs_id} is deleting"
    targets = efs.describe_mount_targets(FileSystemId=fs_id).get("MountTargets", [])
    for target in targets:  # EFS deletes a file system only without mount targets
        if target.get("LifeCycleState") not in ("deleting", "deleted"):
            _delete(partial(efs.delete_mount_target, MountTargetId=target["MountTargetId"]))
    if targets:
        return f"file system {fs_id}: removing {len(targets)} mount target(s)"
    _delete(lambda: efs.delete_file_system(FileSystemId=fs_id))
    return f"file system {fs_id} is {fs.get('LifeCycleState')}"


def _remove_bucket(ctx: StepContext, name: str) -> str | None:
    """One page at a time (each verification deletes up to 1000 object versions), then the bucket."""
    s3 = ctx.client("s3")
    if not _bucket_exists(ctx, name):
        return None
    page = s3.list_object_versions(Bucket=name, MaxKeys=1000)
    objects = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
    ]
    if objects:
        s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        return f"bucket {name}: deleted {len(objects)} object version(s)"
    _delete(lambda: s3.delete_bucket(Bucket=name))
    return f"bucket {name} is being deleted"


def _tag_rds(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("rds").add_tags_to_resource(ResourceName=arn, Tags=tags)


def _tag_table(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("dynamodb").tag_resource(ResourceArn=arn, Tags=tags)


def _tag_ec2(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("ec2").create_tags(Resources=[native_id(arn)], Tags=tags)


def _tag_efs(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("efs").tag_resource(ResourceId=native_id(arn), Tags=tags)


def _tag_bucket(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    s3, name = ctx.client("s3"), native_id(arn)
    try:
        existing = s3.get_bucket_tagging(Bucket=name).get("TagSet", [])
    except Exception as exc:
        if error_code(exc) != "NoSuchTagSet":
            raise
        existing = []
    ours = {t["Key"] for t in tags}
    s3.put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [t for t in existing if t["Key"] not in ours] + tags}
    )


# --- restore metadata ---------------------------------------------------------------------------


def _key(meta: Mapping[str, str], name: str) -> str | None:
    return next((k for k in meta if k.lower() == name.lower()), None)


def _put(meta: dict[str, str], name: str, value: str) -> None:
    existing = _key(meta, name)
    if existing is not None:
        del meta[existing]
    meta[name] = value


def _tidy_rds(meta: dict[str, str], user: set[str]) -> None:
    multi_az = _key(meta, "MultiAZ")
    zone = _key(meta, "AvailabilityZone")
    if multi_az and zone and meta[multi_az].lower() == "true" and "availabilityzone" not in user:
        del meta[zone]


def _tidy_ec2(meta: dict[str, str], user: set[str]) -> None:
    interfaces = _key(meta, "NetworkInterfaces")
    if interfaces and user & {"subnetid", "securitygroupids"} and "networkinterfaces" not in user:
        del meta[interfaces]


@dataclass(frozen=True)
class ResourceType:
    """How one AWS Backup resource type is named, checked, tagged and deleted."""

    kind: str
    noun: str
    name_key: str | None  # restore metadata key that names the new resource (None: tagged Name)
    tag: Callable[[StepContext, str, list[dict[str, str]]], None]
    remove: Callable[[StepContext, str], str | None]  # None once gone, else a progress note
    exists: Callable[[StepContext, str], bool] | None = None  # is the target name taken?
    flags: Mapping[str, str] = field(default_factory=dict)
    tidy: Callable[[dict[str, str], set[str]], None] = lambda meta, user: None


def _taken(describe: Callable[[StepContext, str], Any]) -> Callable[[StepContext, str], bool]:
    return lambda ctx, name: describe(ctx, name) is not None


# fmt: off
TYPES: dict[str, ResourceType] = {
    "RDS": ResourceType("rds:db", "DB instance", "DBInstanceIdentifier", _tag_rds, _remove_db_instance,
                        _taken(_db_instance), tidy=_tidy_rds),
    "Aurora": ResourceType("rds:cluster", "DB cluster", "DBClusterIdentifier", _tag_rds, _remove_db_cluster,
                           _taken(_db_cluster)),
    "DynamoDB": ResourceType("dynamodb:table", "table", "targetTableName", _tag_table, _remove_table,
                             _taken(_table)),
    "EBS": ResourceType("ec2:volume", "volume", None, _tag_ec2, _remove_volume),
    "EC2": ResourceType("ec2:instance", "instance", None, _tag_ec2, _remove_instance, tidy=_tidy_ec2),
    "EFS": ResourceType("efs:filesystem", "file system", "CreationToken", _tag_efs, _remove_file_system,
                        _file_system_named, flags={"newFileSystem": "true"}),
    "S3": ResourceType("s3:bucket", "bucket", "DestinationBucketName", _tag_bucket, _remove_bucket,
                       _bucket_exists, flags={"NewBucket": "true"}),
}
# fmt: on


def build_metadata(
    rtype: ResourceType, restore: Mapping[str, Any], target: str, overrides: Mapping[str, Any]
) -> dict[str, str]:
    """The StartRestoreJob metadata: the backup's own, named ``target``, user overrides last.

    Raises ValueError when an override would rename the resource or restore into an existing one.
    """
    meta = {str(k): str(v) for k, v in restore.items()}
    fixed = {**({rtype.name_key: target} if rtype.name_key else {}), **rtype.flags}
    for key, value in fixed.items():
        _put(meta, key, value)
    for key, value in overrides.items():
        clash = _key(fixed, key)
        if clash is not None and str(value) != fixed[clash]:
            why = (
                "set `target` instead (drills rename `target` to keep away from production)"
                if clash == rtype.name_key
                else f"drplan only restores into a new {rtype.noun}, never into an existing one"
            )
            raise ValueError(f"`metadata.{key}` cannot be {value!r}: {why}")
        _put(meta, clash or key, str(value))
    rtype.tidy(meta, {k.lower() for k in overrides})
    return meta


def type_from_arn(arn: str) -> str | None:
    """The AWS Backup resource type of a resource ARN (None when it does not say)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    service, resource = parts[2], parts[5]
    if service == "rds":
        return "Aurora" if resource.startswith("cluster:") else "RDS" if resource.startswith("db:") else None
    by_prefix = {("ec2", "volume/"): "EBS", ("ec2", "instance/"): "EC2"}
    for (svc, prefix), name in by_prefix.items():
        if service == svc and resource.startswith(prefix):
            return name
    return {"dynamodb": "DynamoDB", "elasticfilesystem": "EFS", "s3": "S3"}.get(service)


def native_id(arn: str) -> str:
    """``arn:…:db:ledger`` -> ``ledger``, ``arn:…:volume/vol-1`` -> ``vol-1``, ``arn:aws:s3:::b`` -> ``b``."""
    resource = arn.split(":", 5)[-1]
    return resource.rsplit("/", 1)[-1] if "/" in resource else resource.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class _Point:
    arn: str
    vault: str
    created: datetime
    resource_type: str | None
    resource_arn: str | None


class _Deferred(Exception):
    """A parameter is a reference to another step's output, unknown before the run (preflight)."""


class BackupRestore(Action):
    name = "aws.backup.restore"
    family = "backup"
    summary = "Restore a resource from an AWS Backup recovery point"
    outputs = {
        "resource_arn": "ARN of the restored resource",
        "recovery_point_arn": "ARN of the recovery point that was restored",
        "restore_job_id": "AWS Backup restore job id",
        "name": "Name of the restored resource",
        "endpoint": "Endpoint address of a restored database (RDS and Aurora)",
    }
    # AWS Backup itself, then per resource type: the target name check, tagging, and undo.
    iam = (
        "backup:ListRecoveryPointsByBackupVault", "backup:ListRecoveryPointsByResource",
        "backup:DescribeRecoveryPoint", "backup:GetRecoveryPointRestoreMetadata", "backup:StartRestoreJob",
        "backup:DescribeRestoreJob", "iam:PassRole",
        "rds:DescribeDBInstances", "rds:DescribeDBClusters", "rds:AddTagsToResource", "rds:ModifyDBInstance",
        "rds:ModifyDBCluster", "rds:DeleteDBInstance", "rds:DeleteDBCluster",
        "dynamodb:DescribeTable", "dynamodb:TagResource", "dynamodb:UpdateTable", "dynamodb:DeleteTable",
        "ec2:DescribeVolumes", "ec2:DescribeInstances", "ec2:CreateTags", "ec2:DeleteVolume",
        "ec2:ModifyInstanceAttribute", "ec2:TerminateInstances",
        "elasticfilesystem:DescribeFileSystems", "elasticfilesystem:DescribeMountTargets",
        "elasticfilesystem:TagResource", "elasticfilesystem:DeleteMountTarget",
        "elasticfilesystem:DeleteFileSystem",
        "s3:ListBucket", "s3:GetBucketTagging", "s3:PutBucketTagging", "s3:ListBucketVersions",
        "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:DeleteBucket",
    )  # fmt: skip
    default_estimate = timedelta(minutes=30)
    concurrency = 10  # AWS Backup's default quota of concurrent restore jobs per account is low
    drill = "isolate"
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        point = params.get("recovery_point", "latest")
        source = (
            f"the latest recovery point of {params.get('resource_arn')} in vault {params.get('vault')}"
            if point == "latest"
            else f"recovery point {point}"
        )
        return f"Restore {source} as {params.get('target')} with AWS Backup"

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        return {**params, "target": suffixed(str(params["target"]), suffix)}

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        rtype = params.get("resource_type") or type_from_arn(str(params.get("resource_arn", "")))
        if rtype is not None and rtype not in ("RDS", "Aurora"):
            return {k: v for k, v in self.outputs.items() if k != "endpoint"}
        return self.outputs

    # --- choosing the recovery point --------------------------------------------------------------

    def _pick(self, ctx: StepContext) -> _Point:
        wanted = ctx.params.get("recovery_point", "latest")
        used = ("recovery_point", "vault", "resource_arn")
        deferred = [p for p in used if "${" in str(ctx.params.get(p, ""))]
        if deferred:
            raise _Deferred(f"`{deferred[0]}` comes from another step: the recovery point is known at run")
        if wanted == "latest":
            return self._latest(ctx)
        vault = ctx.params.get("vault") or self._vault_of(ctx, wanted)
        try:
            backup = ctx.client("backup")
            point = backup.describe_recovery_point(BackupVaultName=vault, RecoveryPointArn=wanted)
        except Exception as exc:
            if is_not_found(exc):
                raise StepFailed(ctx.step.key, f"recovery point {wanted} is not in vault {vault}") from exc
            raise
        status, source = point.get("Status"), ctx.params.get("resource_arn")
        if status not in USABLE:
            raise StepFailed(ctx.step.key, f"recovery point {wanted} is {status}, not COMPLETED")
        if source and point.get("ResourceArn", source) != source:
            of = point["ResourceArn"]
            raise StepFailed(ctx.step.key, f"recovery point {wanted} is a backup of {of}, not of {source}")
        rtype, arn = point.get("ResourceType"), point.get("ResourceArn") or source
        return _Point(wanted, vault, point["CreationDate"], rtype, arn)

    def _latest(self, ctx: StepContext) -> _Point:
        vault, source = ctx.params["vault"], ctx.params["resource_arn"]
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"BackupVaultName": vault, "ByResourceArn": source}
        while True:
            try:
                page = ctx.client("backup").list_recovery_points_by_backup_vault(**kwargs)
            except Exception as exc:
                if is_not_found(exc):
                    raise StepFailed(ctx.step.key, f"backup vault {vault} is not in {ctx.region}") from exc
                raise
            found.extend(p for p in page.get("RecoveryPoints", []) if p.get("Status") in USABLE)
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
        best = newest(found, lambda p: p.get("CreationDate"))
        if best is None:
            raise StepFailed(ctx.step.key, f"vault {vault} has no completed recovery point of {source}")
        rtype, arn = best.get("ResourceType"), best.get("ResourceArn") or source
        return _Point(best["RecoveryPointArn"], vault, best["CreationDate"], rtype, arn)

    def _vault_of(self, ctx: StepContext, arn: str) -> str:
        """The vault of an explicit recovery point when the step names none (AWS Backup needs it)."""
        source = ctx.params.get("resource_arn")
        if not source:
            raise StepFailed(ctx.step.key, "an explicit recovery point needs `vault` (or `resource_arn`)")
        kwargs: dict[str, Any] = {"ResourceArn": source}
        while True:
            page = ctx.client("backup").list_recovery_points_by_resource(**kwargs)
            for point in page.get("RecoveryPoints", []):
                if point.get("RecoveryPointArn") == arn and point.get("BackupVaultName"):
                    return str(point["BackupVaultName"])
            if not page.get("NextToken"):
                raise StepFailed(ctx.step.key, f"{arn} is not a recovery point of {source}; give `vault`")
            kwargs["NextToken"] = page["NextToken"]

    def _type(self, ctx: StepContext, point: _Point) -> str:
        declared = ctx.params.get("resource_type")
        actual = point.resource_type or type_from_arn(point.resource_arn or "")
        if declared and actual and declared != actual:
            raise StepFailed(ctx.step.key, f"resource_type is {declared}, but {point.arn} backs up {actual}")
        name = declared or actual
        if name not in TYPES:
            supported = ", ".join(TYPES)
            raise StepFailed(ctx.step.key, f"cannot restore {name or 'this resource'} ({supported} only)")
        return str(name)

    def _metadata(self, ctx: StepContext, point: _Point, rtype: ResourceType) -> dict[str, str]:
        backup = ctx.client("backup")
        found = backup.get_recovery_point_restore_metadata(
            BackupVaultName=point.vault, RecoveryPointArn=point.arn
        )
        target, overrides = str(ctx.params["target"]), ctx.params.get("metadata", {})
        try:
            return build_metadata(rtype, found.get("RestoreMetadata", {}), target, overrides)
        except ValueError as exc:
            raise StepFailed(ctx.step.key, str(exc)) from exc

    # --- the run --------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        results = [self._role_result(ctx)]
        source = str(ctx.params.get("resource_arn", ""))
        rtype = TYPES.get(ctx.params.get("resource_type") or type_from_arn(source) or "")
        try:
            point = self._pick(ctx)
            rtype = TYPES[self._type(ctx, point)]
            metadata = self._metadata(ctx, point, rtype)
        except _Deferred as exc:
            results.insert(0, PreflightResult("warning", str(exc)))
        except StepFailed as exc:
            results.insert(0, PreflightResult("error", exc.reason))
        else:
            results.insert(0, freshness_result(ctx, "recovery point", point.arn, point.created))
            note = f"restore metadata for the {rtype.noun}: {len(metadata)} keys"
            results.append(PreflightResult("ok", note, {"metadata": metadata}))
            zone = metadata.get(_key(metadata, "availabilityZone") or "")
            if rtype.kind == "ec2:volume" and zone and not zone.startswith(ctx.region):
                note = f"the volume would be made in {zone}, not {ctx.region}: set metadata.availabilityZone"
                results.append(PreflightResult("warning", note))
        target = str(ctx.params.get("target", ""))
        if rtype is not None and rtype.exists is not None and target and "${" not in target:
            results.append(target_free(rtype.exists(ctx, target), rtype.noun, target))
        return results

    def _role_result(self, ctx: StepContext) -> PreflightResult:
        role = str(ctx.params.get("iam_role_arn", ""))
        if "${" in role:
            return PreflightResult("warning", "`iam_role_arn` comes from another step: known at run time")
        if not ROLE_ARN.match(role):
            return PreflightResult("error", f"iam_role_arn {role!r} is no role ARN (arn:aws:iam::…:role/…)")
        return PreflightResult("ok", f"AWS Backup would assume {role}", {"iam_role_arn": role})

    def start(self, ctx: StepContext) -> Handle:
        point = self._pick(ctx)
        require_fresh(ctx, point.created, f"recovery point {point.arn}")
        type_name = self._type(ctx, point)
        rtype, target = TYPES[type_name], str(ctx.params["target"])
        metadata = self._metadata(ctx, point, rtype)
        if rtype.exists is not None and rtype.exists(ctx, target):
            raise StepFailed(ctx.step.key, f"{rtype.noun} {target} already exists; refusing to overwrite it")
        try:
            job = ctx.client("backup").start_restore_job(
                RecoveryPointArn=point.arn,
                Metadata=metadata,
                IamRoleArn=ctx.params["iam_role_arn"],
                IdempotencyToken=ctx.client_token,
                ResourceType=type_name,
            )["RestoreJobId"]
        except Exception as exc:
            if error_code(exc) in REFUSED:
                raise StepFailed(ctx.step.key, f"AWS Backup refused the restore: {_message(exc)}") from exc
            raise
        handle: Handle = {
            "restore_job_id": job,
            "recovery_point_arn": point.arn,
            "vault": point.vault,
            "resource_type": type_name,
            "target": target,
            "resource_arn": None,
            "tagged": False,
        }
        recovery_point(handle, point.arn, point.created)
        add_resource(handle, Resource(rtype.kind, target, ctx.region, extra={"restore_job_id": job}))
        return handle

    def _job(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        """The restore job; records the resource it created in the handle as soon as AWS names it."""
        backup = ctx.client("backup")
        job: dict[str, Any] = backup.describe_restore_job(RestoreJobId=handle["restore_job_id"])
        created = job.get("CreatedResourceArn")
        if created and created != handle.get("resource_arn"):
            handle["resource_arn"] = created
            for resource in handle.get("resources", []):
                resource["arn"] = created
                resource.setdefault("extra", {})["native_id"] = native_id(created)
        return job

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        job = self._job(ctx, handle)
        status, job_id = job.get("Status"), handle["restore_job_id"]
        if status in ("PENDING", "RUNNING"):
            done = str(job.get("PercentDone") or "").rstrip("%")
            return Poll.running(f"restore job {job_id} {status}" + (f" ({done}% done)" if done else ""))
        if status != "COMPLETED":
            reason = job.get("StatusMessage") or "AWS Backup gave no reason"
            return Poll.failure(f"restore job {job_id} {status}: {reason}")
        rtype, arn = TYPES[handle["resource_type"]], handle.get("resource_arn")
        if not arn:
            return Poll.failure(f"restore job {job_id} completed but names no created resource")
        if not handle.get("tagged"):
            rtype.tag(ctx, arn, aws_tags(ctx, {"Name": handle["target"]} if rtype.name_key is None else None))
            handle["tagged"] = True
        return Poll.finished(f"restored {rtype.noun} {handle['target']} ({arn})")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        out: dict[str, Any] = {
            "resource_arn": handle["resource_arn"],
            "recovery_point_arn": handle["recovery_point_arn"],
            "restore_job_id": handle["restore_job_id"],
            "name": handle["target"],
        }
        name, endpoint = native_id(handle["resource_arn"]), None
        if handle["resource_type"] == "RDS":
            endpoint = ((_db_instance(ctx, name) or {}).get("Endpoint") or {}).get("Address")
        elif handle["resource_type"] == "Aurora":
            endpoint = (_db_cluster(ctx, name) or {}).get("Endpoint")
        if endpoint:
            out["endpoint"] = endpoint
        return out

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        """Delete what the restore job created: known from the job itself, never guessed from a name."""
        arn = handle.get("resource_arn")
        if not arn:
            arn = (_lookup(lambda: self._job(ctx, handle)) or {}).get("CreatedResourceArn")
        if arn:
            TYPES[handle["resource_type"]].remove(ctx, native_id(arn))
        return {"resource_arn": arn}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        rtype, job_id = TYPES[handle["resource_type"]], handle["restore_job_id"]
        if not undo_handle.get("resource_arn"):
            job = _lookup(lambda: self._job(ctx, handle))
            if job is None:
                return Poll.finished(f"restore job {job_id} does not exist; nothing to delete")
            if not job.get("CreatedResourceArn"):
                if job.get("Status") in ("PENDING", "RUNNING"):
                    return Poll.running(f"waiting for restore job {job_id} to end, to delete what it made")
                return Poll.finished(f"restore job {job_id} ended {job.get('Status')}, creating nothing")
            undo_handle["resource_arn"] = job["CreatedResourceArn"]
        name = native_id(undo_handle["resource_arn"])
        note = rtype.remove(ctx, name)
        return Poll.finished(f"{rtype.noun} {name} deleted") if note is None else Poll.running(note)

    def seed(self, ctx: StepContext) -> None:
        """Nothing here: the sandbox emulates AWS Backup (vaults, recovery points, restore jobs)
        separately and seeds this step's recovery point there. Deliberately no fake data."""


ACTIONS = (BackupRestore,)
