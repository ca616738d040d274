"""What ``aws.backup.restore`` knows about each resource type AWS Backup restores: the resource kind
it makes (its naming rule and ARN in :mod:`drplan.resources`, its deletion on undo in
:mod:`drplan.removal`), how the new resource is named in the restore metadata (and which derived
keys to drop), the typed ``with`` parameters that set its restore metadata (:data:`OVERRIDES`),
and how it is looked up and tagged with its own service's API."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drplan import removal
from drplan.actions.base import StepContext
from drplan.aws import error_code
from drplan.resources import native_id, resource_from_arn

# --- the native services: look up and tag what a restore job created --------------------------------


def db_instance(ctx: StepContext, name: str) -> dict[str, Any] | None:
    return removal.describe_db_instance(ctx.client, name)


def db_cluster(ctx: StepContext, name: str) -> dict[str, Any] | None:
    return removal.describe_db_cluster(ctx.client, name)


def _table(ctx: StepContext, name: str) -> dict[str, Any] | None:
    return removal.describe_table(ctx.client, name)


def _bucket_exists(ctx: StepContext, name: str) -> bool:
    return removal.bucket_exists(ctx.client, name)


def _file_system_named(ctx: StepContext, token: str) -> bool:
    return bool(ctx.client("efs").describe_file_systems(CreationToken=token).get("FileSystems"))


def _tag_rds(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("rds").add_tags_to_resource(ResourceName=arn, Tags=tags)


def _tag_table(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("dynamodb").tag_resource(ResourceArn=arn, Tags=tags)


def _tag_ec2(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("ec2").create_tags(Resources=[native_id(arn)], Tags=tags)


def _tag_efs(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("efs").tag_resource(ResourceId=native_id(arn), Tags=tags)


def _tag_fsx(ctx: StepContext, arn: str, tags: list[dict[str, str]]) -> None:
    ctx.client("fsx").tag_resource(ResourceARN=arn, Tags=tags)


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
class Override:
    """How one typed ``with`` parameter is written into the restore metadata of one type."""

    key: str  # the metadata key, as AWS documents it (a spelling the recovery point uses wins)
    as_list: bool = False  # a list, written as a JSON array in the string value
    implies: Mapping[str, str] = field(default_factory=dict)  # keys AWS requires next to it


#: The typed parameters: for each, what it means (schema descriptions say more).
PARAMETERS = {
    "kms_key": "KMS key to encrypt the restored resource with",
    "subnet": "subnet of the restored instance",
    "subnets": "subnets of the restored file system",
    "subnet_group": "DB subnet group of the restored database",
    "security_groups": "security groups of the restored resource",
    "instance_type": "instance type (EC2) or DB instance class (RDS)",
    "instance_profile": "IAM instance profile of the restored instance",
    "availability_zone": "availability zone of the restored volume or DB instance",
}

_DB_CLUSTER = {
    "kms_key": Override("KmsKeyId"),
    "subnet_group": Override("DBSubnetGroupName"),
    "security_groups": Override("VpcSecurityGroupIds", as_list=True),
}
OVERRIDES: dict[str, dict[str, Override]] = {
    "RDS": {
        "subnet_group": Override("DBSubnetGroupName"),
        "security_groups": Override("VpcSecurityGroupIds", as_list=True),
        "instance_type": Override("DBInstanceClass"),
        "availability_zone": Override("AvailabilityZone"),
    },
    "Aurora": _DB_CLUSTER,
    "DocumentDB": _DB_CLUSTER,
    "Neptune": _DB_CLUSTER,
    "DynamoDB": {"kms_key": Override("kmsMasterKeyArn", implies={"encryptionType": "KMS"})},
    "EBS": {
        "kms_key": Override("kmsKeyId", implies={"encrypted": "true"}),
        "availability_zone": Override("availabilityZone"),
    },
    "EC2": {
        "subnet": Override("SubnetId"),
        "security_groups": Override("SecurityGroupIds", as_list=True),
        "instance_type": Override("InstanceType"),
        "instance_profile": Override("IamInstanceProfileName"),
    },
    "EFS": {"kms_key": Override("KmsKeyId", implies={"Encrypted": "true"})},
    "FSx": {
        "kms_key": Override("KmsKeyId"),
        "subnets": Override("SubnetIds", as_list=True),
        "security_groups": Override("SecurityGroupIds", as_list=True),
    },
    "S3": {},
}


@dataclass(frozen=True)
class ResourceType:
    """How one AWS Backup resource type is named, checked and tagged (deleted: by its ``kind``)."""

    kind: str  # a key of drplan.resources.KINDS and drplan.removal.REMOVERS
    noun: str
    name_key: str | None  # restore metadata key that names the new resource (None: tagged Name)
    tag: Callable[[StepContext, str, list[dict[str, str]]], None]
    exists: Callable[[StepContext, str], bool] | None = None  # is the target name taken?
    flags: Mapping[str, str] = field(default_factory=dict)
    tidy: Callable[[dict[str, str], set[str]], None] = lambda meta, user: None
    #: Typed ``with`` parameters this type takes, and the restore metadata each one sets.
    overrides: Mapping[str, Override] = field(default_factory=dict)
    #: Where the ``endpoint`` output comes from: "instance" (RDS), "cluster" (the DB cluster types).
    endpoint: str | None = None

    def remove(self, ctx: StepContext, native: str) -> str | None:
        """One round of deleting the resource a restore job created (:mod:`drplan.removal`, in the
        step's region and role): None once it is gone, else a note on progress."""
        return removal.REMOVERS[self.kind](ctx.client, native)


def _taken(describe: Callable[[StepContext, str], Any]) -> Callable[[StepContext, str], bool]:
    return lambda ctx, name: describe(ctx, name) is not None


# fmt: off
TYPES: dict[str, ResourceType] = {
    "RDS": ResourceType("rds:db", "DB instance", "DBInstanceIdentifier", _tag_rds, _taken(db_instance),
                        tidy=_tidy_rds, overrides=OVERRIDES["RDS"], endpoint="instance"),
    "Aurora": ResourceType("rds:cluster", "DB cluster", "DBClusterIdentifier", _tag_rds, _taken(db_cluster),
                           overrides=OVERRIDES["Aurora"], endpoint="cluster"),
    "DocumentDB": ResourceType("rds:cluster", "DocumentDB cluster", "DBClusterIdentifier", _tag_rds,
                               _taken(db_cluster), overrides=OVERRIDES["DocumentDB"], endpoint="cluster"),
    "Neptune": ResourceType("rds:cluster", "Neptune cluster", "DBClusterIdentifier", _tag_rds,
                            _taken(db_cluster), overrides=OVERRIDES["Neptune"], endpoint="cluster"),
    "DynamoDB": ResourceType("dynamodb:table", "table", "targetTableName", _tag_table, _taken(_table),
                             overrides=OVERRIDES["DynamoDB"]),
    "EBS": ResourceType("ec2:volume", "volume", None, _tag_ec2, overrides=OVERRIDES["EBS"]),
    "EC2": ResourceType("ec2:instance", "instance", None, _tag_ec2, tidy=_tidy_ec2, overrides=OVERRIDES["EC2"]),
    "EFS": ResourceType("efs:filesystem", "file system", "CreationToken", _tag_efs, _file_system_named,
                        flags={"newFileSystem": "true"}, overrides=OVERRIDES["EFS"]),
    "FSx": ResourceType("fsx:filesystem", "FSx file system", None, _tag_fsx, overrides=OVERRIDES["FSx"]),
    "S3": ResourceType("s3:bucket", "bucket", "DestinationBucketName", _tag_bucket, _bucket_exists,
                       flags={"NewBucket": "true"}),
}
# fmt: on

#: The type a resource ARN implies when the step names none: DB cluster ARNs look alike for Aurora,
#: DocumentDB and Neptune (all ``arn:aws:rds:…:cluster:…``), so they read as Aurora until the
#: recovery point's own ResourceType says otherwise.
_BY_KIND = {"rds:cluster": "Aurora"}

#: Types whose restored resource is not known by its ``target`` name (tagged ``Name``, or an EFS
#: file system whose id AWS picks): journaled by restore job until the job names what it created.
BY_RESTORE_JOB = frozenset(name for name, rtype in TYPES.items() if rtype.name_key is None) | {"EFS"}


def typed_overrides(rtype_name: str, params: Mapping[str, Any]) -> dict[str, str]:
    """The restore metadata the step's typed parameters set for a type (keys as AWS documents them).

    Raises ValueError naming a typed parameter the type does not take.
    """
    allowed = OVERRIDES.get(rtype_name, {})
    out: dict[str, str] = {}
    for param in PARAMETERS:
        if param not in params:
            continue
        override = allowed.get(param)
        if override is None:
            takes = ", ".join(f"`{p}`" for p in allowed) or "no typed parameters (use `metadata`)"
            raise ValueError(f"`{param}` does not apply to a {rtype_name} restore, which takes {takes}")
        value = params[param]
        if override.as_list:
            items = [value] if isinstance(value, str) else list(value)
            out[override.key] = json.dumps([str(v) for v in items])
        else:
            out[override.key] = str(value)
        out.update(override.implies)
    return out


def build_metadata(
    rtype: ResourceType,
    restore: Mapping[str, Any],
    target: str,
    overrides: Mapping[str, Any],
    typed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The StartRestoreJob metadata: the backup's own, named ``target``, then the typed parameters'
    keys (``typed``, from :func:`typed_overrides`), then the raw ``metadata`` overrides.

    Raises ValueError when an override would rename the resource or restore into an existing one,
    or when ``metadata`` sets a key a typed parameter sets too (say it once).
    """
    meta = {str(k): str(v) for k, v in restore.items()}
    fixed = {**({rtype.name_key: target} if rtype.name_key else {}), **rtype.flags}
    for key, value in fixed.items():
        _put(meta, key, value)
    typed = dict(typed or {})
    for key, value in typed.items():
        _put(meta, meta_key(meta, key) or key, value)  # the recovery point's spelling of a key wins
    for key, value in overrides.items():
        clash = meta_key(fixed, key)
        if clash is not None and str(value) != fixed[clash]:
            why = (
                "set `target` instead (drills rename `target` to keep away from production)"
                if clash == rtype.name_key
                else f"drplan only restores into a new {rtype.noun}, never into an existing one"
            )
            raise ValueError(f"`metadata.{key}` cannot be {value!r}: {why}")
        twice = meta_key(typed, key)
        if twice is not None:
            param = next(
                (p for p, o in rtype.overrides.items() if twice == o.key or twice in o.implies), "a parameter"
            )
            raise ValueError(
                f"`metadata.{key}` and `{param}` both set restore metadata {twice}: keep one of them"
            )
        _put(meta, clash or key, str(value))
    rtype.tidy(meta, {k.lower() for k in [*overrides, *typed]})
    return meta


def type_from_arn(arn: str) -> str | None:
    """The AWS Backup resource type of a resource ARN (None when it names no kind AWS Backup restores)."""
    found = resource_from_arn(arn)
    kind = found.kind if found is not None else None
    if kind in _BY_KIND:
        return _BY_KIND[kind]
    return next((name for name, rtype in TYPES.items() if rtype.kind == kind), None)
