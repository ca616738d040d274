"""AWS Backup: restore a resource from a recovery point.

The step picks a recovery point: ``latest`` is the newest one of ``resource_arn`` in ``vault``
(so the vault of the recovery region finds cross-region copies) whose status is COMPLETED or
AVAILABLE (AWS's newer name for a finished backup; PARTIAL, EXPIRED, STOPPED... are skipped); an
explicit ARN is described in ``vault`` (or in the vault ``resource_arn``'s recovery points name,
since every AWS Backup lookup needs the vault). It then starts one restore job and polls it.

AWS Backup creates the resource itself, so drplan shapes the job's *restore metadata*: it starts
from ``GetRecoveryPointRestoreMetadata`` (the resource's configuration when it was backed up),
names the new resource after ``target``, applies the step's typed parameters (``kms_key``,
``subnet``, ``security_groups``... below), then its raw ``metadata`` overrides, then drops the
derived keys AWS would refuse next to them.

==========  ==============  =======================  ====================  ==========================
type        resource kind   ``target`` is set as     drplan also sets      removed (unless you set it)
==========  ==============  =======================  ====================  ==========================
RDS         rds:db          DBInstanceIdentifier     -                     AvailabilityZone [1]
Aurora      rds:cluster     DBClusterIdentifier      -                     -
DocumentDB  rds:cluster     DBClusterIdentifier      -                     -
Neptune     rds:cluster     DBClusterIdentifier      -                     -
DynamoDB    dynamodb:table  targetTableName          -                     -
EBS         ec2:volume      tag ``Name`` [2]         -                     -
EC2         ec2:instance    tag ``Name`` [2]         -                     NetworkInterfaces [3]
EFS         efs:filesystem  CreationToken            newFileSystem=true    -
FSx         fsx:filesystem  tag ``Name`` [2]         -                     -
S3          s3:bucket       DestinationBucketName    NewBucket=true        -
==========  ==============  =======================  ====================  ==========================

[1] when ``MultiAZ`` is ``true``: RDS refuses an availability zone for a Multi-AZ instance.
[2] restore metadata has no name for volumes, instances and FSx file systems: drplan tags the
    result ``Name=target``.
[3] when you set ``SubnetId`` or ``SecurityGroupIds`` (``subnet``, ``security_groups``):
    RunInstances refuses them next to the source's network interfaces.

Typed parameters, for restores in another account or Region (a DR account restoring vault copies
has its own network and keys), and the metadata key each sets per type (a list is written as a
JSON array in the string value, the form the StartRestoreJob reference shows for EFS's
``itemsToRestore``):

==================  ==================================================================================
parameter           metadata key
==================  ==================================================================================
kms_key             KmsKeyId (Aurora, DocumentDB, Neptune, FSx; EFS also Encrypted=true),
                    kmsMasterKeyArn (DynamoDB, also encryptionType=KMS), kmsKeyId (EBS, also
                    encrypted=true)
subnet              SubnetId (EC2)
subnets             SubnetIds (FSx)
subnet_group        DBSubnetGroupName (RDS, Aurora, DocumentDB, Neptune)
security_groups     SecurityGroupIds (EC2, FSx), VpcSecurityGroupIds (RDS, Aurora, DocumentDB, Neptune)
instance_type       InstanceType (EC2), DBInstanceClass (RDS)
instance_profile    IamInstanceProfileName (EC2)
availability_zone   availabilityZone (EBS), AvailabilityZone (RDS)
==================  ==================================================================================

A typed parameter that does not apply to the type is an error, and so is ``metadata`` setting a
key a typed parameter sets too. The name key and the "new resource" flags cannot be overridden
through ``metadata``: a drill renames ``target`` to keep away from production, and drplan never
restores into (nor, on undo, deletes) a resource it did not create. Keys are matched
case-insensitively, as AWS Backup does; where the recovery point spells a key, its spelling is kept.

Notes per type: Aurora, DocumentDB and Neptune restores create the DB *cluster* only (AWS Backup
adds no DB instances; ``endpoint`` and ``reader_endpoint`` are the cluster's, usable once a later
step adds an instance). Their ARNs look alike (``arn:aws:rds:…:cluster:…``): without
``resource_type`` the recovery point's own type decides. An EFS restore puts the data in an
``aws-backup-restore_<timestamp>`` directory at the root of the new file system and creates no
mount targets. EBS and EC2 restores take the source's availability zone / subnet from the
metadata: restoring a cross-region copy needs ``availability_zone`` / ``subnet`` (preflight warns
about a volume's zone).

AWS Backup takes no tags for the restored resource, so drplan tags it (run tags, step ``tags``)
once the job completes. Volumes, instances and file systems, whose ids AWS picks, are journaled as
the restore job itself (``backup-restore-job:<id>``) until then: cleanup, even of a run that died
mid-restore, asks the job what it created (``CreatedResourceArn``) instead of guessing from a
name. Undo deletes what the job reports as ``CreatedResourceArn`` with the resource's own service
API (deletion protection of a resource drplan created is turned off first, DB clusters lose their
instances first, with no final snapshot, file systems their mount targets, FSx file systems no
final backup), and verifies it is gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
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
from drplan.actions.backup.targets import (
    BY_RESTORE_JOB,
    OVERRIDES,
    TYPES,
    build_metadata,
    db_cluster,
    db_instance,
    meta_key,
    type_from_arn,
    typed_overrides,
)
from drplan.actions.base import (
    Action,
    Handle,
    Poll,
    PreflightResult,
    StepContext,
    isolated_name,
    update_handle_resources,
)
from drplan.aws import error_code, error_message
from drplan.errors import StepFailed
from drplan.removal import lookup
from drplan.resources import RESTORE_JOB_PREFIX, Resource, Target, native_id

#: Recovery point states that can be restored (AVAILABLE is the newer name of a finished backup).
USABLE = ("COMPLETED", "AVAILABLE")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
#: What StartRestoreJob says when the request itself is wrong (the user can act on it).
REFUSED = frozenset({
    "InvalidParameterValueException", "MissingParameterValueException", "InvalidRequestException",
    "ResourceNotFoundException",
})  # fmt: skip


@dataclass(frozen=True)
class _Point:
    arn: str
    vault: str
    created: datetime
    resource_type: str | None
    resource_arn: str | None


def _set(params: Mapping[str, Any], param: str, key: str) -> bool:
    """Did the step set ``key`` of the restore metadata (by ``param`` or in raw ``metadata``)?"""
    return param in params or meta_key(params.get("metadata", {}), key) is not None


def _dns_suffix(region: str) -> str:
    """The domain of AWS endpoints in a region's partition (EFS mount names are built on it)."""
    return "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"


class _Deferred(Exception):
    """A parameter is a reference to another step's output, unknown before the run (preflight)."""


class BackupRestore(Action):
    name = "aws.backup.restore"
    family = "backup"
    summary = "Restore a resource from an AWS Backup recovery point"
    outputs = {
        "resource_arn": "ARN of the restored resource",
        "resource_id": "Id of the restored resource in its own service (instance, volume or file system id, "
        "DB identifier, table or bucket name)",
        "recovery_point_arn": "ARN of the recovery point that was restored",
        "restore_job_id": "AWS Backup restore job id",
        "name": "Name of the restored resource",
        "endpoint": "Endpoint address of a restored database (RDS; the cluster endpoint of Aurora, DocumentDB "
        "and Neptune)",
        "reader_endpoint": "Reader endpoint of a restored DB cluster (Aurora, DocumentDB, Neptune)",
        "port": "Port of a restored database",
        "instance_id": "Id of a restored EC2 instance",
        "private_ip": "Private IP address of a restored EC2 instance",
        "volume_id": "Id of a restored EBS volume",
        "file_system_id": "Id of a restored EFS or FSx file system",
        "dns_name": "DNS name to mount a restored EFS or FSx file system by",
    }
    #: The outputs of each resource type beyond the common ones.
    TYPE_OUTPUTS = {
        "RDS": ("endpoint", "port"),
        "Aurora": ("endpoint", "reader_endpoint", "port"),
        "DocumentDB": ("endpoint", "reader_endpoint", "port"),
        "Neptune": ("endpoint", "reader_endpoint", "port"),
        "EC2": ("instance_id", "private_ip"),
        "EBS": ("volume_id",),
        "EFS": ("file_system_id", "dns_name"),
        "FSx": ("file_system_id", "dns_name"),
    }
    COMMON_OUTPUTS = ("resource_arn", "resource_id", "recovery_point_arn", "restore_job_id", "name")
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
        "fsx:DescribeFileSystems", "fsx:TagResource", "fsx:DeleteFileSystem",
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
        return {**params, "target": isolated_name(params["target"], suffix, self._kind(params) or "rds:db")}

    def _kind(self, params: Mapping[str, Any]) -> str | None:
        rtype = TYPES.get(
            params.get("resource_type") or type_from_arn(str(params.get("resource_arn", ""))) or ""
        )
        return rtype.kind if rtype is not None else None

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        kind = self._kind(params)
        return (Target(kind, str(params["target"]), "target"),) if kind is not None else ()

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        """The common outputs and the type's own; every output while the type is not known yet (an
        ARN from another step, a recovery point only)."""
        rtype = params.get("resource_type") or type_from_arn(str(params.get("resource_arn", "")))
        if rtype is None or rtype not in TYPES:
            return self.outputs
        if TYPES[rtype].kind == "rds:cluster" and not params.get("resource_type"):
            rtype = "Aurora"  # any of the DB cluster types: the same outputs
        names = (*self.COMMON_OUTPUTS, *self.TYPE_OUTPUTS.get(rtype, ()))
        return {k: v for k, v in self.outputs.items() if k in names}

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
        same_kind = declared in TYPES and actual in TYPES and TYPES[declared].kind == TYPES[actual].kind
        if same_kind and not point.resource_type:
            actual = declared  # a DB cluster ARN: Aurora, DocumentDB or Neptune, as declared
        if declared and actual and declared != actual:
            raise StepFailed(ctx.step.key, f"resource_type is {declared}, but {point.arn} backs up {actual}")
        name = declared or actual
        if name not in TYPES:
            supported = ", ".join(TYPES)
            raise StepFailed(ctx.step.key, f"cannot restore {name or 'this resource'} ({supported} only)")
        return str(name)

    def _metadata(self, ctx: StepContext, point: _Point, type_name: str) -> dict[str, str]:
        rtype = TYPES[type_name]
        try:
            typed = typed_overrides(type_name, ctx.params)
        except ValueError as exc:
            raise StepFailed(ctx.step.key, str(exc)) from exc
        backup = ctx.client("backup")
        found = backup.get_recovery_point_restore_metadata(
            BackupVaultName=point.vault, RecoveryPointArn=point.arn
        )
        target, overrides = str(ctx.params["target"]), ctx.params.get("metadata", {})
        try:
            return build_metadata(rtype, found.get("RestoreMetadata", {}), target, overrides, typed)
        except ValueError as exc:
            raise StepFailed(ctx.step.key, str(exc)) from exc

    # --- the run --------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        results = [self._role_result(ctx)]
        source = str(ctx.params.get("resource_arn", ""))
        rtype = TYPES.get(ctx.params.get("resource_type") or type_from_arn(source) or "")
        try:
            point = self._pick(ctx)
            type_name = self._type(ctx, point)
            rtype = TYPES[type_name]
            metadata = self._metadata(ctx, point, type_name)
        except _Deferred as exc:
            results.insert(0, PreflightResult("warning", str(exc)))
            results.extend(self._typed_result(ctx))
        except StepFailed as exc:
            results.insert(0, PreflightResult("error", exc.reason))
        else:
            results.insert(0, freshness_result(ctx, "recovery point", point.arn, point.created))
            note = f"restore metadata for the {rtype.noun}: {len(metadata)} keys"
            results.append(PreflightResult("ok", note, {"metadata": metadata}))
            zone = metadata.get(meta_key(metadata, "availabilityZone") or "")
            if rtype.kind == "ec2:volume" and zone and not zone.startswith(ctx.region):
                note = f"the volume would be made in {zone}, not {ctx.region}: set `availability_zone`"
                results.append(PreflightResult("warning", note))
            source_region = (point.resource_arn or "").split(":")[3:4]
            moved = bool(source_region and source_region[0] and source_region[0] != ctx.region)
            if type_name == "EC2" and moved and not _set(ctx.params, "subnet", "SubnetId"):
                note = (
                    f"the instance was backed up in {source_region[0]}: its subnet is not in {ctx.region}; "
                    "set `subnet`"
                )
                results.append(PreflightResult("warning", note))
        target = str(ctx.params.get("target", ""))
        if rtype is not None and rtype.exists is not None and target and "${" not in target:
            results.append(target_free(rtype.exists(ctx, target), rtype.noun, target))
        return results

    def _typed_result(self, ctx: StepContext) -> list[PreflightResult]:
        """Typed parameters that do not apply to the type the step declares (or its ARN implies),
        when the recovery point cannot be looked at yet."""
        name = ctx.params.get("resource_type") or type_from_arn(str(ctx.params.get("resource_arn", "")))
        if name not in OVERRIDES:
            return []
        try:
            typed_overrides(str(name), ctx.params)
        except ValueError as exc:
            return [PreflightResult("error", str(exc))]
        return []

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
        metadata = self._metadata(ctx, point, type_name)
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
                raise StepFailed(
                    ctx.step.key, f"AWS Backup refused the restore: {error_message(exc)}"
                ) from exc
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
        if type_name in BY_RESTORE_JOB:  # AWS picks the id: cleanup asks the job what it made
            resource = Resource(
                rtype.kind,
                RESTORE_JOB_PREFIX + job,
                ctx.region,
                extra={"name": target, "restore_job_id": job},
            )
        else:
            resource = Resource(rtype.kind, target, ctx.region, extra={"restore_job_id": job})
        add_resource(ctx, handle, resource)
        return handle

    def _job(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        """The restore job; records the resource it created in the handle as soon as AWS names it."""
        backup = ctx.client("backup")
        job: dict[str, Any] = backup.describe_restore_job(RestoreJobId=handle["restore_job_id"])
        created = job.get("CreatedResourceArn")
        if created and created != handle.get("resource_arn"):
            handle["resource_arn"] = created

            def learnt(resource: dict[str, Any]) -> None:
                resource["arn"] = created
                resource.setdefault("extra", {})["native_id"] = native_id(created)

            update_handle_resources(handle, learnt)
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
        arn = handle["resource_arn"]
        native = native_id(arn)
        out: dict[str, Any] = {
            "resource_arn": arn,
            "resource_id": native,
            "recovery_point_arn": handle["recovery_point_arn"],
            "restore_job_id": handle["restore_job_id"],
            "name": handle["target"],
        }
        type_name = handle["resource_type"]
        endpoint = TYPES[type_name].endpoint
        if endpoint == "instance":
            db = db_instance(ctx, native) or {}
            out.update(
                endpoint=(db.get("Endpoint") or {}).get("Address"),
                port=(db.get("Endpoint") or {}).get("Port"),
            )
        elif endpoint == "cluster":
            cluster = db_cluster(ctx, native) or {}
            out.update(
                endpoint=cluster.get("Endpoint"),
                reader_endpoint=cluster.get("ReaderEndpoint"),
                port=cluster.get("Port"),
            )
        elif type_name == "EC2":
            out["instance_id"] = native
            found = lookup(lambda: ctx.client("ec2").describe_instances(InstanceIds=[native]))
            instances = [i for r in (found or {}).get("Reservations", []) for i in r.get("Instances", [])]
            out["private_ip"] = instances[0].get("PrivateIpAddress") if instances else None
        elif type_name == "EBS":
            out["volume_id"] = native
        elif type_name == "EFS":
            out.update(file_system_id=native, dns_name=f"{native}.efs.{ctx.region}.{_dns_suffix(ctx.region)}")
        elif type_name == "FSx":
            found = lookup(lambda: ctx.client("fsx").describe_file_systems(FileSystemIds=[native]))
            systems = (found or {}).get("FileSystems", [])
            out.update(file_system_id=native, dns_name=systems[0].get("DNSName") if systems else None)
        return {k: v for k, v in out.items() if v is not None}

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        """Delete what the restore job created: known from the job itself, never guessed from a name."""
        arn = handle.get("resource_arn")
        if not arn:
            arn = (lookup(lambda: self._job(ctx, handle)) or {}).get("CreatedResourceArn")
        if arn:
            TYPES[handle["resource_type"]].remove(ctx, native_id(arn))
        return {"resource_arn": arn}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        rtype, job_id = TYPES[handle["resource_type"]], handle["restore_job_id"]
        if not undo_handle.get("resource_arn"):
            job = lookup(lambda: self._job(ctx, handle))
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
