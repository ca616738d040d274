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

import contextlib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions._aws import add_resource, as_utc, aws_tags, freshness_result, recovery_point
from drplan.actions.base import Action, Handle, Poll, PreflightResult, Resource, StepContext, suffixed
from drplan.aws import error_code
from drplan.durations import parse_duration
from drplan.errors import StepFailed

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
_GONE = ("404", "NoSuchBucket", "NotFound")


def entries_by_key(page: Mapping[str, Any], after: str | None) -> dict[str, list[dict[str, Any]]]:
    """Versions and delete markers of one ListObjectVersions page, grouped by key (keys > ``after``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for kind, field in (("version", "Versions"), ("marker", "DeleteMarkers")):
        for entry in page.get(field, []):
            if after is None or entry["Key"] > after:
                groups.setdefault(entry["Key"], []).append({**entry, "kind": kind})
    return groups


def newest_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The current entry first, then by time. S3 lists versions and markers apart and with one-second
    times; the sort is stable, so within one second a version stays ahead of a marker."""
    return sorted(
        entries, key=lambda e: (not e.get("IsLatest", False), -as_utc(e["LastModified"]).timestamp())
    )


def decide(
    entries: list[dict[str, Any]], at: datetime, *, in_place: bool, current: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    """What to do with one key: ``("restore", version)``, ``("delete", None)`` or ``("unchanged", …)``.

    ``entries`` are the key's versions and markers, newest first. In place, the current state is
    ``entries[0]``; for another target, ``current`` is the target object (ETag and size) or None.
    A key counts as unchanged when the target already holds the version of that time, or the same
    bytes (same ETag and size).
    """
    then = next((e for e in entries if as_utc(e["LastModified"]) <= at), None)
    wanted = then if then is not None and then["kind"] == "version" else None
    if in_place:
        latest = entries[0]
        if wanted is None:
            return ("unchanged", None) if latest["kind"] == "marker" else ("delete", None)
        same = latest["kind"] == "version" and (
            latest.get("VersionId") == wanted.get("VersionId") or _same_content(latest, wanted)
        )
        return ("unchanged" if same else "restore"), wanted
    if wanted is None:
        return ("unchanged", None) if current is None else ("delete", None)
    same = current is not None and _same_content(current, wanted)
    return ("unchanged" if same else "restore"), wanted


def _same_content(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Same ETag and size: the bytes are already there (a re-run, or a copy made before). An ETag
    that differs for the same bytes (SSE-KMS, multipart) only costs one needless copy."""
    size = have.get("Size", have.get("ContentLength"))
    return bool(have.get("ETag")) and have.get("ETag") == wanted.get("ETag") and size == wanted.get("Size")


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
        return {**params, "target_bucket": suffixed(target, suffix).lower()}

    # --- what the parameters mean -----------------------------------------------------------------

    def _where(self, ctx: StepContext) -> tuple[str, str, str, str]:
        bucket, prefix = str(ctx.params["bucket"]), str(ctx.params.get("prefix", ""))
        target = str(ctx.params.get("target_bucket") or bucket)
        target_prefix = str(ctx.params.get("target_prefix", prefix))
        return bucket, prefix, target, target_prefix

    def _moment(self, ctx: StepContext) -> datetime:
        value = str(ctx.params["at"])
        if value.startswith("P"):
            return as_utc(ctx.started_at) - parse_duration(value)
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")))
        except ValueError as exc:
            raise StepFailed(
                ctx.step.key, f"`at` {value!r} is not an RFC 3339 timestamp or an ISO 8601 duration"
            ) from exc

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
        status = self._versioning(ctx, bucket)
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

    def _versioning(self, ctx: StepContext, bucket: str) -> str | None:
        """``Enabled``/``Suspended``/``""`` (never versioned), ``forbidden``, or None when missing."""
        try:
            return str(ctx.client("s3").get_bucket_versioning(Bucket=bucket).get("Status", ""))
        except Exception as exc:
            if error_code(exc) in _GONE:
                return None
            if error_code(exc) in ("AccessDenied", "403", "AllAccessDisabled"):
                return "forbidden"
            raise

    def _ours(self, ctx: StepContext, bucket: str) -> bool:
        """Whether ``bucket`` carries this run's and this step's tags (made by an earlier ``start``)."""
        try:
            tags = ctx.client("s3").get_bucket_tagging(Bucket=bucket).get("TagSet", [])
        except Exception as exc:
            if error_code(exc) in ("NoSuchTagSet", "AccessDenied", *_GONE):
                return False
            raise
        have = {t["Key"]: t["Value"] for t in tags}
        return have.get("drplan:run-id") == ctx.run_id and have.get("drplan:step") == ctx.step.key

    # --- preflight --------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        try:
            moment = self._moment(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        problem = self._problem(ctx)
        if problem is not None:
            return [PreflightResult("error", problem)]
        bucket, prefix, target, _ = self._where(ctx)
        results = [
            freshness_result(ctx, "point in time", f"s3://{bucket}/{prefix}@{moment.isoformat()}", moment)
        ]
        target_status = self._versioning(ctx, target) if target != bucket else "Enabled"
        if target != bucket:
            results.append(self._target_finding(target, target_status))
        results.append(self._count_finding(ctx, moment, existing_target=target_status is not None))
        return results

    def _target_finding(self, target: str, status: str | None) -> PreflightResult:
        facts = {"target": target}
        if status is None:
            return PreflightResult(
                "ok", f"bucket name {target} is free; it would be created, versioned and tagged", facts
            )
        if status == "forbidden":
            return PreflightResult(
                "error", f"bucket {target} exists and is not accessible (another account's?)", facts
            )
        if status != "Enabled":
            return PreflightResult(
                "error",
                f"target bucket {target} exists and is not versioned; the restore would refuse it",
                facts,
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
            groups, more = self._next_keys(ctx, bucket, prefix, cursor, 1000)
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
        moment = self._moment(ctx)
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
            self._prepare_target(ctx, handle, target)
        return handle

    def _prepare_target(self, ctx: StepContext, handle: Handle, target: str) -> None:
        client = ctx.client("s3")
        status = self._versioning(ctx, target)
        if status == "forbidden":
            raise StepFailed(
                ctx.step.key, f"target bucket {target} exists and is not accessible; refusing to use it"
            )
        if status is None:
            config = (
                {}
                if ctx.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
            )
            try:
                client.create_bucket(Bucket=target, **config)
            except Exception as exc:
                if error_code(exc) in ("BucketAlreadyExists", "BucketAlreadyOwnedByYou"):
                    raise StepFailed(
                        ctx.step.key, f"target bucket {target} already exists; refusing to write into it"
                    ) from exc
                raise
        elif not self._ours(ctx, target):
            if status != "Enabled":
                raise StepFailed(
                    ctx.step.key,
                    f"target bucket {target} exists and is not versioned; refusing to write into it",
                )
            return  # an existing, versioned bucket the step did not create: written into, never deleted
        # Created here, or by an earlier start of this step in this run (it carries our tags).
        handle["created_bucket"] = True
        add_resource(handle, Resource("s3:bucket", target, ctx.region, f"arn:aws:s3:::{target}"))
        client.put_bucket_tagging(Bucket=target, Tagging={"TagSet": aws_tags(ctx)})
        client.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": "Enabled"})

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        if not handle["finished"]:
            groups, more = self._next_keys(
                ctx, handle["bucket"], handle["prefix"], handle["cursor"], BATCH_KEYS
            )
            at = datetime.fromisoformat(handle["at"])
            for key, entries in groups:
                self._restore_key(ctx, handle, key, entries, at)
            handle["finished"] = not more
        counts = handle["counts"]
        note = f"{counts['restored']} restored, {counts['deleted']} deleted, {counts['unchanged']} unchanged"
        if handle["finished"]:
            return Poll.finished(f"s3://{handle['target_bucket']}/{handle['target_prefix']}: {note}")
        return Poll.running(f"up to {handle['cursor']}: {note}", retry_after=0)

    def _next_keys(
        self, ctx: StepContext, bucket: str, prefix: str, after: str | None, limit: int
    ) -> tuple[list[tuple[str, list[dict[str, Any]]]], bool]:
        """Complete version lists of the next keys after ``after``; and whether more keys follow.

        A truncated page may end inside a key's versions, so its last key is left for the next call;
        a key with more versions than a page is listed on with the version marker.
        """
        client = ctx.client("s3")
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": limit}
        if after is not None:
            kwargs["KeyMarker"] = after
        groups: dict[str, list[dict[str, Any]]] = {}
        while True:
            page = client.list_object_versions(**kwargs)
            for key, entries in entries_by_key(page, after).items():
                groups.setdefault(key, []).extend(entries)
            keys = sorted(groups)
            if not page.get("IsTruncated"):
                return [(k, newest_first(groups[k])) for k in keys], False
            if len(keys) >= 2:
                return [(k, newest_first(groups[k])) for k in keys[:-1]], True
            kwargs["KeyMarker"] = page["NextKeyMarker"]
            kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]

    def _restore_key(
        self, ctx: StepContext, handle: Handle, key: str, entries: list[dict[str, Any]], at: datetime
    ) -> None:
        target, target_key = handle["target_bucket"], handle["target_prefix"] + key[len(handle["prefix"]) :]
        current = None
        if not handle["in_place"] and not handle["created_bucket"]:
            current = self._head(ctx, target, target_key)
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

    def _head(self, ctx: StepContext, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = ctx.client("s3").head_object(Bucket=bucket, Key=key)
            return head
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound", "405", "MethodNotAllowed"):
                return None  # absent, or a delete marker is current
            raise

    def _copy(
        self, ctx: StepContext, key: str, version: Mapping[str, Any], target_key: str, handle: Handle
    ) -> str | None:
        """Copy one old version forward into the target; returns the new version's id."""
        source = {"Bucket": handle["bucket"], "Key": key, "VersionId": version["VersionId"]}
        extra = {"StorageClass": version["StorageClass"]} if version.get("StorageClass") in KEEP_CLASS else {}
        try:
            if int(version.get("Size", 0)) > COPY_LIMIT:
                return self._copy_multipart(
                    ctx, source, int(version["Size"]), handle["target_bucket"], target_key, extra
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

    def _copy_multipart(
        self,
        ctx: StepContext,
        source: Mapping[str, str],
        size: int,
        bucket: str,
        key: str,
        extra: Mapping[str, Any],
    ) -> str | None:
        """Objects over 5 GiB: ranged UploadPartCopy, with the source's headers, metadata and tags."""
        from urllib.parse import urlencode

        client = ctx.client("s3")
        head = client.head_object(**source)
        kept = (
            "ContentType",
            "CacheControl",
            "ContentDisposition",
            "ContentEncoding",
            "ContentLanguage",
            "Metadata",
        )
        options = {k: head[k] for k in kept if head.get(k)}
        tags = client.get_object_tagging(**source).get("TagSet", [])
        if tags:
            options["Tagging"] = urlencode([(t["Key"], t["Value"]) for t in tags])
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, **options, **extra)["UploadId"]
        part = max(PART_SIZE, -(-size // 10_000))
        try:
            parts = []
            for number, first in enumerate(range(0, size, part), start=1):
                last = min(first + part, size) - 1
                copied = client.upload_part_copy(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource=dict(source),
                    CopySourceRange=f"bytes={first}-{last}",
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            done = client.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # The copy's own error matters more; undo of a created bucket aborts any leftover upload.
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise
        version_id: str | None = done.get("VersionId")
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
            self._remove_bucket(ctx, handle["target_bucket"])
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
                if error_code(exc) in _GONE:
                    return Poll.finished(f"bucket {target} deleted")
                raise
            self._remove_bucket(ctx, target)  # something was left (a late write, a lost call): again
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
        self._delete_versions(
            ctx, handle["target_bucket"], [{"Key": k, "VersionId": v} for k, v in sorted(versions) if v]
        )

    def _delete_versions(self, ctx: StepContext, bucket: str, objects: list[dict[str, str]]) -> None:
        client = ctx.client("s3")
        for first in range(0, len(objects), 1000):
            response = client.delete_objects(
                Bucket=bucket, Delete={"Objects": objects[first : first + 1000], "Quiet": True}
            )
            errors = [
                e for e in response.get("Errors", []) if e.get("Code") not in ("NoSuchVersion", "NoSuchKey")
            ]
            if errors:
                raise StepFailed(
                    ctx.step.key,
                    f"cannot delete {len(errors)} versions in {bucket}: "
                    f"{errors[0].get('Code')} {errors[0].get('Message', '')}",
                )

    def _remove_bucket(self, ctx: StepContext, bucket: str) -> None:
        """Empty the bucket the step created (every version, marker and unfinished upload), delete it.

        Refuses a bucket tagged by another drplan run: the name was freed and taken again."""
        client = ctx.client("s3")
        try:
            tags = {t["Key"]: t["Value"] for t in client.get_bucket_tagging(Bucket=bucket).get("TagSet", [])}
        except Exception as exc:
            if error_code(exc) in _GONE:
                return
            if error_code(exc) != "NoSuchTagSet":
                raise
            tags = {}
        if tags.get("drplan:run-id", ctx.run_id) != ctx.run_id:
            raise StepFailed(
                ctx.step.key,
                f"bucket {bucket} now belongs to drplan run {tags['drplan:run-id']}; not deleting it",
            )
        try:
            for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
                entries = [e for group in entries_by_key(page, None).values() for e in group]
                self._delete_versions(
                    ctx, bucket, [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in entries]
                )
            for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
                for upload in page.get("Uploads", []):
                    client.abort_multipart_upload(
                        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            client.delete_bucket(Bucket=bucket)
        except Exception as exc:
            if error_code(exc) in _GONE:
                return
            if error_code(exc) != "BucketNotEmpty":  # poll_undo empties it again
                raise

    # --- the sandbox ------------------------------------------------------------------------------

    def seed(self, ctx: StepContext) -> None:
        """A versioned bucket whose keys under ``prefix`` have versions before and after ``at``.

        Written in two phases, old then new (:data:`SEED_OLD`, :data:`SEED_NEW`): three keys changed
        after ``at`` (one of them deleted), one unchanged, one created after it; so a restore at
        ``at`` restores 3, deletes 1 and leaves 1 unchanged. Idempotent: a bucket that already has
        versions under the prefix is left alone.

        S3 stamps ``LastModified`` itself and the emulator uses the real clock, so every seeded
        version is seconds old, and a plan with ``at: PT1H`` would find that no key existed an hour
        ago and delete them all. The API cannot backdate an object, so when the emulator runs in
        this process the seed moves the times in moto's backend (see :func:`_backdate_in_moto`);
        elsewhere the versions keep their real times.
        """
        client = ctx.client("s3")
        bucket, prefix = str(ctx.params["bucket"]), str(ctx.params.get("prefix", ""))
        status = self._versioning(ctx, bucket)
        if status == "forbidden":
            return
        if status is None:
            config = (
                {}
                if ctx.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
            )
            client.create_bucket(Bucket=bucket, **config)
        else:
            page = client.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=1)
            if page.get("Versions") or page.get("DeleteMarkers"):
                return
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        written: dict[str, list[tuple[str, str]]] = {"old": [], "new": []}
        for phase, writes in (("old", SEED_OLD), ("new", SEED_NEW)):
            for name, label in writes:
                key = prefix + name
                if label is None:
                    response = client.delete_object(Bucket=bucket, Key=key)
                else:
                    body = f"# {name} ({label})\nid,amount\n" + "".join(
                        f"{i},{i * 10 + len(label)}\n" for i in range(5)
                    )
                    response = client.put_object(Bucket=bucket, Key=key, Body=body.encode())
                written[phase].append((key, response["VersionId"]))
        now = datetime.now(timezone.utc)
        value = str(ctx.params["at"])
        at = now - parse_duration(value) if value.startswith("P") else self._moment(ctx)
        if at < now:
            # Old versions an hour before `at`, new ones up to a minute before now: for `at: PT1H`
            # they stay on the right side of `at` if the run starts within 59 minutes of the seed.
            new_base = now - min((now - at) / 2, timedelta(seconds=60))
            stamps = [
                (k, v, at - timedelta(hours=1) + timedelta(seconds=i))
                for i, (k, v) in enumerate(written["old"])
            ]
            stamps += [
                (k, v, new_base + timedelta(milliseconds=10 * i)) for i, (k, v) in enumerate(written["new"])
            ]
            _backdate_in_moto(bucket, stamps)


#: The sandbox's source data: (key under the prefix, version label or None for a delete).
SEED_OLD: tuple[tuple[str, str | None], ...] = (
    ("orders/2024-01.csv", "v1"),
    ("orders/2024-01.csv", "v2"),
    ("orders/2024-02.csv", "v1"),
    ("customers.json", "v1"),
    ("customers.json", "v2"),
    ("config/settings.json", "v1"),
)
SEED_NEW: tuple[tuple[str, str | None], ...] = (
    ("orders/2024-01.csv", "v3-corrupted"),
    ("orders/2024-02.csv", "v2-corrupted"),
    ("config/settings.json", None),
    ("reports/created-later.csv", "v1"),
)


def _backdate_in_moto(bucket: str, stamps: list[tuple[str, str, datetime]]) -> bool:
    """SANDBOX ONLY, moto internals: set ``LastModified`` of seeded versions in moto's S3 backend.

    There is no S3 API to set an object's time, and a point-in-time restore needs versions older
    than ``at``. This reaches into moto (5.x: ``s3_backends.bucket_accounts``, ``FakeBucket.keys``,
    ``last_modified`` as naive UTC) and does nothing unless this process hosts the emulator and the
    bucket is in it: against real AWS, or a moto server in another process, it returns False.
    """
    try:
        from moto.s3.models import s3_backends
    except ImportError:
        return False
    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return False
    partition, account = owner
    fake = s3_backends[account][partition].buckets.get(bucket)
    if fake is None:
        return False
    for key, version_id, when in stamps:
        for version in fake.keys.getlist(key, []):
            if version.version_id == version_id:
                version.last_modified = as_utc(when).replace(tzinfo=None)
    return True


ACTIONS = (RestoreVersions,)
