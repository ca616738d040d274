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
    TYPES,
    ResourceType,
    build_metadata,
    db_cluster,
    db_instance,
    meta_key,
    type_from_arn,
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
from drplan.resources import Resource, Target, native_id

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
            zone = metadata.get(meta_key(metadata, "availabilityZone") or "")
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
        add_resource(ctx, handle, Resource(rtype.kind, target, ctx.region, extra={"restore_job_id": job}))
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
        out: dict[str, Any] = {
            "resource_arn": handle["resource_arn"],
            "recovery_point_arn": handle["recovery_point_arn"],
            "restore_job_id": handle["restore_job_id"],
            "name": handle["target"],
        }
        name, endpoint = native_id(handle["resource_arn"]), None
        if handle["resource_type"] == "RDS":
            endpoint = ((db_instance(ctx, name) or {}).get("Endpoint") or {}).get("Address")
        elif handle["resource_type"] == "Aurora":
            endpoint = (db_cluster(ctx, name) or {}).get("Endpoint")
        if endpoint:
            out["endpoint"] = endpoint
        return out

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
