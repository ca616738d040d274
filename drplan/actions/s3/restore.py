"""Amazon S3: put the objects under a prefix back to their versions at a point in time.

For every key under ``prefix`` the version current at ``at`` is the newest version or delete
marker with ``LastModified <= at``. If that is an object version, it is copied forward (a new
version with the old content) unless the target already holds it; if the key did not exist then
(no version before ``at``, or a delete marker was current), the key is deleted in the target, which
in a versioned bucket only adds a delete marker, so nothing is lost. S3 gives times to the second:
a version written in the same second as ``at`` counts as before it, and of a version and a delete
marker written in the same second, the version is taken as the newer one.

How the work is split between the engine's calls:

- :meth:`RestoreVersions.start` checks the source, resolves ``at``, prepares the target bucket
  (creating, tagging and versioning it when it does not exist) and returns: it writes no object,
  so a bucket it created is in the journal before anything is copied into it.
- :meth:`RestoreVersions.poll` copies one bounded batch (:data:`BATCH_KEYS` keys, listed from a
  key cursor kept in the handle) and answers ``running`` with ``retry_after=0`` until the listing
  is exhausted. Every write is recorded in the handle as soon as its call returns and the cursor
  moves key by key, so a poll repeated after throttling resumes where it stopped and never writes
  the same key twice; an interrupt or the step's timeout stops between batches.

Undo deletes the bucket the step created (all versions, then the bucket), or, after an in-place
restore, exactly the versions and delete markers the step wrote (by version id), which makes the
previous versions current again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from drplan.actions._aws import freshness_result, recovery_point
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext, isolated_name
from drplan.actions.s3.versions import (
    GONE,
    copy_multipart,
    decide,
    delete_versions,
    entries_by_key,
    head_object,
    next_keys,
    point_in_time,
    prepare_target,
    remove_bucket,
    versioning,
)
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Target

#: Keys handled per poll: each costs one or two calls, so a batch takes seconds, not minutes.
BATCH_KEYS = 200
#: CopyObject's limit; larger versions are copied with a multipart upload of ranged part copies.
COPY_LIMIT = 5 * 1024**3
PART_SIZE = 512 * 1024**2
#: Preflight counts at most this many keys (it lists the whole prefix, read-only).
PREFLIGHT_MAX_KEYS = 100_000
ARCHIVED = ("GLACIER", "DEEP_ARCHIVE")
#: Storage classes kept when a version is copied forward (CopyObject would otherwise write STANDARD).
KEEP_CLASS = ("STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "REDUCED_REDUNDANCY")


class RestoreVersions(Action):
    name = "aws.s3.restore_versions"
    family = "storage"
    summary = "Restore the objects under a prefix to their versions at a point in time"
    outputs = {
        "bucket": "Bucket the objects were restored into",
        "prefix": "Key prefix the objects were restored under",
        "restored": "Number of objects copied back from an older version",
        "deleted": "Number of objects removed because they did not exist at that time",
        "unchanged": "Number of objects already at their version of that time",
    }
    iam = (
        "s3:ListBucketVersions",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectVersionTagging",
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:DeleteObject",
        "s3:GetBucketVersioning",
        "s3:PutBucketVersioning",
        "s3:CreateBucket",
        "s3:GetBucketTagging",
        "s3:PutBucketTagging",
        "s3:ListBucketMultipartUploads",
        "s3:AbortMultipartUpload",
        "s3:DeleteObjectVersion",
        "s3:DeleteBucket",
    )
    default_estimate = timedelta(minutes=10)
    drill = "isolate"
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        where = f"s3://{params.get('bucket')}/{params.get('prefix', '')}"
        into = f" into s3://{params['target_bucket']}" if params.get("target_bucket") else ""
        at = params.get("at")
        when = f"as of {at}" if not str(at).startswith("P") else f"as they were {at} before the run"
        return f"Put the objects under {where} back {when}{into}"

    def isolate(
        self, params: Mapping[str, Any], suffix: str, *, redirected: bool
    ) -> Mapping[str, Any] | None:
        # Drills restore into a new bucket they create and delete; never into the source.
        target = str(params.get("target_bucket") or params["bucket"])
        return {**params, "target_bucket": isolated_name(target, suffix, "s3:bucket").lower()}

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        bucket, target = str(params["bucket"]), params.get("target_bucket")
        if target is None or str(target) == bucket:
            return (Target("s3:bucket", bucket, "bucket", creates=False),)  # restored in place
        return (Target("s3:bucket", str(target), "target_bucket"),)

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        return (Target("s3:bucket", str(params["bucket"]), "bucket", creates=False),)

    # --- what the parameters mean -----------------------------------------------------------------

    def _where(self, ctx: StepContext) -> tuple[str, str, str, str]:
        bucket, prefix = str(ctx.params["bucket"]), str(ctx.params.get("prefix", ""))
        target = str(ctx.params.get("target_bucket") or bucket)
        target_prefix = str(ctx.params.get("target_prefix", prefix))
        return bucket, prefix, target, target_prefix

    def _problem(self, ctx: StepContext) -> str | None:
        """A reason the step cannot run, found from the parameters and the source bucket alone."""
        bucket, prefix, target, target_prefix = self._where(ctx)
        if (
            target == bucket
            and target_prefix != prefix
            and (target_prefix.startswith(prefix) or prefix.startswith(target_prefix))
        ):
            return (
                f"target prefix {target_prefix!r} overlaps prefix {prefix!r} in bucket {bucket}; "
                "restored objects would be restored again"
            )
        status = versioning(ctx, bucket)
        if status is None:
            return f"bucket {bucket} does not exist"
        if status == "forbidden":
            return f"cannot read bucket {bucket} (access denied)"
        if status not in ("Enabled", "Suspended"):
            return f"bucket {bucket} is not versioned: there are no older versions to restore"
        if target == bucket and status != "Enabled":
            return (
                f"versioning is {status.lower()} on bucket {bucket}; "
                "restoring into it would overwrite its null versions"
            )
        return None

    # --- preflight --------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        try:
            moment = point_in_time(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        problem = self._problem(ctx)
        if problem is not None:
            return [PreflightResult("error", problem)]
        bucket, prefix, target, _ = self._where(ctx)
        results = [
            freshness_result(ctx, "point in time", f"s3://{bucket}/{prefix}@{moment.isoformat()}", moment)
        ]
        target_status = versioning(ctx, target) if target != bucket else "Enabled"
        if target != bucket:
            results.append(self._target_finding(target, target_status))
        results.append(self._count_finding(ctx, moment, existing_target=target_status is not None))
        return results

    def _target_finding(self, target: str, status: str | None) -> PreflightResult:
        facts = {"target": target}
        if status is None:
            return PreflightResult(
                "ok",
                f"bucket name {target} is free; it would be created, versioned and tagged",
                facts,
                name=target,
            )
        if status == "forbidden":
            return PreflightResult(
                "error",
                f"bucket {target} exists and is not accessible (another account's?)",
                facts,
                name=target,
            )
        if status != "Enabled":
            return PreflightResult(
                "error",
                f"target bucket {target} exists and is not versioned; the restore would refuse it",
                facts,
                name=target,
            )
        return PreflightResult(
            "ok",
            f"target bucket {target} exists and is versioned; restored objects become new versions",
            facts,
        )

    def _count_finding(self, ctx: StepContext, moment: datetime, *, existing_target: bool) -> PreflightResult:
        bucket, prefix, target, target_prefix = self._where(ctx)
        in_place = (target, target_prefix) == (bucket, prefix)
        client = ctx.client("s3")
        current: dict[str, dict[str, Any]] = {}
        if not in_place and existing_target:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=target, Prefix=target_prefix):
                current.update({o["Key"]: o for o in page.get("Contents", [])})
        counts = {"restore": 0, "delete": 0, "unchanged": 0}
        archived, cursor, more = 0, None, True
        while more and sum(counts.values()) < PREFLIGHT_MAX_KEYS:
            groups, more = next_keys(ctx, bucket, prefix, cursor, 1000)
            for key, entries in groups:
                what, version = decide(
                    entries,
                    moment,
                    in_place=in_place,
                    current=current.get(target_prefix + key[len(prefix) :]),
                )
                counts[what] += 1
                if what == "restore" and version is not None and version.get("StorageClass") in ARCHIVED:
                    archived += 1
                cursor = key
        facts = {"restored": counts["restore"], "deleted": counts["delete"], "unchanged": counts["unchanged"]}
        text = (
            f"{counts['restore']} to restore, {counts['delete']} to delete, {counts['unchanged']} unchanged"
        )
        if more:
            facts["partial"] = True
            text = f"of the first {sum(counts.values())} keys: {text}"
        if archived:
            return PreflightResult(
                "error",
                f"{text}; {archived} of the versions to restore are archived (Glacier): restore them first",
                facts,
            )
        if counts["delete"] and not counts["restore"] and not counts["unchanged"]:
            return PreflightResult(
                "warning", f"{text}: every key under the prefix is younger than `at`", facts
            )
        return PreflightResult("ok", f"at {moment.isoformat()}: {text}", facts)

    # --- running ----------------------------------------------------------------------------------

    def start(self, ctx: StepContext) -> Handle:
        problem = self._problem(ctx)
        if problem is not None:
            raise StepFailed(ctx.step.key, problem)
        bucket, prefix, target, target_prefix = self._where(ctx)
        moment = point_in_time(ctx)
        handle: Handle = {
            "bucket": bucket,
            "prefix": prefix,
            "target_bucket": target,
            "target_prefix": target_prefix,
            "at": moment.isoformat(),
            "in_place": (target, target_prefix) == (bucket, prefix),
            "created_bucket": False,
            "cursor": None,
            "finished": False,
            "counts": {"restored": 0, "deleted": 0, "unchanged": 0},
            "written": [],  # {"key", "version_id", "kind": "version" | "delete_marker"}: what undo removes
        }
        recovery_point(handle, f"s3://{bucket}/{prefix}@{moment.isoformat()}", moment)
        if target != bucket:
            prepare_target(ctx, handle, target)
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        if not handle["finished"]:
            groups, more = next_keys(ctx, handle["bucket"], handle["prefix"], handle["cursor"], BATCH_KEYS)
            at = datetime.fromisoformat(handle["at"])
            for key, entries in groups:
                self._restore_key(ctx, handle, key, entries, at)
            handle["finished"] = not more
        counts = handle["counts"]
        note = f"{counts['restored']} restored, {counts['deleted']} deleted, {counts['unchanged']} unchanged"
        if handle["finished"]:
            return Poll.finished(f"s3://{handle['target_bucket']}/{handle['target_prefix']}: {note}")
        return Poll.running(f"up to {handle['cursor']}: {note}", retry_after=0)

    def _restore_key(
        self, ctx: StepContext, handle: Handle, key: str, entries: list[dict[str, Any]], at: datetime
    ) -> None:
        target, target_key = handle["target_bucket"], handle["target_prefix"] + key[len(handle["prefix"]) :]
        current = None
        if not handle["in_place"] and not handle["created_bucket"]:
            current = head_object(ctx, target, target_key)
        what, version = decide(entries, at, in_place=handle["in_place"], current=current)
        client = ctx.client("s3")
        if what == "restore" and version is not None:
            written = self._copy(ctx, key, version, target_key, handle)
            handle["written"].append({"key": target_key, "version_id": written, "kind": "version"})
            handle["counts"]["restored"] += 1
        elif what == "delete":
            marker = client.delete_object(Bucket=target, Key=target_key).get("VersionId")
            handle["written"].append({"key": target_key, "version_id": marker, "kind": "delete_marker"})
            handle["counts"]["deleted"] += 1
        else:
            handle["counts"]["unchanged"] += 1
        handle["cursor"] = key

    def _copy(
        self, ctx: StepContext, key: str, version: Mapping[str, Any], target_key: str, handle: Handle
    ) -> str | None:
        """Copy one old version forward into the target; returns the new version's id."""
        source = {"Bucket": handle["bucket"], "Key": key, "VersionId": version["VersionId"]}
        extra = {"StorageClass": version["StorageClass"]} if version.get("StorageClass") in KEEP_CLASS else {}
        try:
            if int(version.get("Size", 0)) > COPY_LIMIT:
                return copy_multipart(
                    ctx, source, int(version["Size"]), handle["target_bucket"], target_key, extra, PART_SIZE
                )
            response = ctx.client("s3").copy_object(
                Bucket=handle["target_bucket"], Key=target_key, CopySource=source, **extra
            )
        except Exception as exc:
            if error_code(exc) in ("InvalidObjectState", "ObjectNotInActiveTierError"):
                raise StepFailed(
                    ctx.step.key,
                    f"version {version['VersionId']} of {key} is archived ({version.get('StorageClass')}); "
                    "restore it from Glacier first",
                ) from exc
            if error_code(exc) in ("NoSuchVersion", "NoSuchKey"):
                raise StepFailed(
                    ctx.step.key, f"version {version['VersionId']} of {key} vanished during the restore"
                ) from exc
            raise
        version_id: str | None = response.get("VersionId")
        return version_id

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        counts = handle["counts"]
        return {
            "bucket": handle["target_bucket"],
            "prefix": handle["target_prefix"],
            "restored": counts["restored"],
            "deleted": counts["deleted"],
            "unchanged": counts["unchanged"],
        }

    # --- undo -------------------------------------------------------------------------------------

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        if handle.get("created_bucket"):
            remove_bucket(ctx, handle["target_bucket"])
            return {"bucket": handle["target_bucket"]}
        self._delete_written(ctx, handle, {(w["key"], w["version_id"]) for w in handle.get("written", [])})
        return {"versions": len(handle.get("written", []))}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        client = ctx.client("s3")
        target = handle["target_bucket"]
        if handle.get("created_bucket"):
            try:
                client.head_bucket(Bucket=target)
            except Exception as exc:
                if error_code(exc) in GONE:
                    return Poll.finished(f"bucket {target} deleted")
                raise
            remove_bucket(ctx, target)  # something was left (a late write, a lost call): again
            return Poll.running(f"deleting bucket {target}")
        ours = {(w["key"], w["version_id"]) for w in handle.get("written", [])}
        left: set[tuple[str, Any]] = set()
        for page in client.get_paginator("list_object_versions").paginate(
            Bucket=target, Prefix=handle["target_prefix"]
        ):
            for entries in entries_by_key(page, None).values():
                left.update((e["Key"], e["VersionId"]) for e in entries if (e["Key"], e["VersionId"]) in ours)
        if not left:
            return Poll.finished(f"removed the {len(ours)} versions and delete markers the restore wrote")
        self._delete_written(ctx, handle, left)
        return Poll.running(f"{len(left)} written versions left")

    def _delete_written(self, ctx: StepContext, handle: Handle, versions: set[tuple[str, Any]]) -> None:
        delete_versions(
            ctx, handle["target_bucket"], [{"Key": k, "VersionId": v} for k, v in sorted(versions) if v]
        )
