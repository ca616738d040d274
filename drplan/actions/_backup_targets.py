"""What ``aws.backup.restore`` knows about each resource type AWS Backup restores: how the new
resource is named in the restore metadata (and which derived keys to drop), and how it is looked
up, tagged and, on undo, deleted with its own service's API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from drplan.actions._aws import is_not_found
from drplan.actions.base import StepContext
from drplan.aws import error_code

#: Errors that mean "the resource is busy (creating, modifying, attached): delete it later".
BUSY = frozenset({
    "InvalidDBInstanceState", "InvalidDBClusterStateFault", "ResourceInUseException", "VolumeInUse",
    "IncorrectState", "IncorrectInstanceState", "FileSystemInUse", "BucketNotEmpty",
})  # fmt: skip


# --- the native services: look up, tag and delete what a restore job created ----------------------


def error_message(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Message", exc))


def _missing(exc: BaseException) -> bool:
    return is_not_found(exc) or error_code(exc) == "404"  # S3 HeadBucket answers a bare 404


def lookup(fn: Callable[[], Any]) -> Any:
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
        if unprotect is not None and (
            code == "OperationNotPermitted" or "protect" in error_message(exc).lower()
        ):
            unprotect()  # the next verification deletes it
            return
        raise


def db_instance(ctx: StepContext, name: str) -> dict[str, Any] | None:
    rds = ctx.client("rds")
    found: dict[str, Any] | None = lookup(
        lambda: rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    )
    return found


def db_cluster(ctx: StepContext, name: str) -> dict[str, Any] | None:
    rds = ctx.client("rds")
    found: dict[str, Any] | None = lookup(
        lambda: rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
    )
    return found


def _table(ctx: StepContext, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = lookup(
        lambda: ctx.client("dynamodb").describe_table(TableName=name)["Table"]
    )
    return found


def _bucket_exists(ctx: StepContext, name: str) -> bool:
    try:
        return lookup(lambda: ctx.client("s3").head_bucket(Bucket=name)) is not None
    except Exception as exc:
        if error_code(exc) == "403":  # the name belongs to someone else's bucket
            return True
        raise


def _file_system_named(ctx: StepContext, token: str) -> bool:
    return bool(ctx.client("efs").describe_file_systems(CreationToken=token).get("FileSystems"))


def _remove_db_instance(ctx: StepContext, name: str) -> str | None:
    db = db_instance(ctx, name)
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
    cluster = db_cluster(ctx, name)
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
    volume = lookup(lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])
    if volume is None or volume.get("State") == "deleted":
        return None
    if volume.get("State") != "deleting":
        _delete(lambda: ec2.delete_volume(VolumeId=volume_id))
    return f"volume {volume_id} is {volume.get('State')}"


def _remove_instance(ctx: StepContext, instance_id: str) -> str | None:
    ec2 = ctx.client("ec2")
    reservations = lookup(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]) or []
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
    fs = lookup(lambda: efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0])
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


def meta_key(meta: Mapping[str, str], name: str) -> str | None:
    return next((k for k in meta if k.lower() == name.lower()), None)


def _put(meta: dict[str, str], name: str, value: str) -> None:
    existing = meta_key(meta, name)
    if existing is not None:
        del meta[existing]
    meta[name] = value


def _tidy_rds(meta: dict[str, str], user: set[str]) -> None:
    multi_az = meta_key(meta, "MultiAZ")
    zone = meta_key(meta, "AvailabilityZone")
    if multi_az and zone and meta[multi_az].lower() == "true" and "availabilityzone" not in user:
        del meta[zone]


def _tidy_ec2(meta: dict[str, str], user: set[str]) -> None:
    interfaces = meta_key(meta, "NetworkInterfaces")
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
                        _taken(db_instance), tidy=_tidy_rds),
    "Aurora": ResourceType("rds:cluster", "DB cluster", "DBClusterIdentifier", _tag_rds, _remove_db_cluster,
                           _taken(db_cluster)),
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
        clash = meta_key(fixed, key)
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
