"""The S3 calls behind ``aws.s3.restore_versions``, at the level of object versions: list a
prefix's versions key by key and decide what each key needs for a point in time, prepare the
target bucket, copy large versions in parts, and delete versions or a whole bucket."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from drplan.actions._aws import add_resource, as_utc, aws_tags
from drplan.actions.base import Handle, StepContext
from drplan.aws import error_code
from drplan.durations import parse_duration
from drplan.errors import StepFailed
from drplan.resources import Resource

GONE = ("404", "NoSuchBucket", "NotFound")


# --- what each key needs at a point in time -------------------------------------------------------


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
            latest.get("VersionId") == wanted.get("VersionId") or same_content(latest, wanted)
        )
        return ("unchanged" if same else "restore"), wanted
    if wanted is None:
        return ("unchanged", None) if current is None else ("delete", None)
    same = current is not None and same_content(current, wanted)
    return ("unchanged" if same else "restore"), wanted


def same_content(have: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Same ETag and size: the bytes are already there (a re-run, or a copy made before). An ETag
    that differs for the same bytes (SSE-KMS, multipart) only costs one needless copy."""
    size = have.get("Size", have.get("ContentLength"))
    return bool(have.get("ETag")) and have.get("ETag") == wanted.get("ETag") and size == wanted.get("Size")


# --- reading --------------------------------------------------------------------------------------


def point_in_time(ctx: StepContext) -> datetime:
    """The moment ``at`` names: a timestamp, or a duration before the run started."""
    value = str(ctx.params["at"])
    if value.startswith("P"):
        return as_utc(ctx.started_at) - parse_duration(value)
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00")))
    except ValueError as exc:
        raise StepFailed(
            ctx.step.key, f"`at` {value!r} is not an RFC 3339 timestamp or an ISO 8601 duration"
        ) from exc


def versioning(ctx: StepContext, bucket: str) -> str | None:
    """``Enabled``/``Suspended``/``""`` (never versioned), ``forbidden``, or None when missing."""
    try:
        return str(ctx.client("s3").get_bucket_versioning(Bucket=bucket).get("Status", ""))
    except Exception as exc:
        if error_code(exc) in GONE:
            return None
        if error_code(exc) in ("AccessDenied", "403", "AllAccessDisabled"):
            return "forbidden"
        raise


def bucket_is_ours(ctx: StepContext, bucket: str) -> bool:
    """Whether ``bucket`` was made by an earlier ``start`` of this step: it carries this run's and
    this step's tags, or (drills) its name holds the run id: a process that died between creating
    the bucket and tagging it left an untagged bucket that is still the drill's own."""
    if ctx.mode == "drill" and ctx.run_id in bucket:
        return True
    try:
        tags = ctx.client("s3").get_bucket_tagging(Bucket=bucket).get("TagSet", [])
    except Exception as exc:
        if error_code(exc) in ("NoSuchTagSet", "AccessDenied", *GONE):
            return False
        raise
    have = {t["Key"]: t.get("Value", "") for t in tags}
    return have.get("drplan:run-id") == ctx.run_id and have.get("drplan:step") == ctx.step.key


def next_keys(
    ctx: StepContext, bucket: str, prefix: str, after: str | None, limit: int
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


def head_object(ctx: StepContext, bucket: str, key: str) -> dict[str, Any] | None:
    """The current object at ``key`` (ETag, size...), or None."""
    try:
        head: dict[str, Any] = ctx.client("s3").head_object(Bucket=bucket, Key=key)
        return head
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound", "405", "MethodNotAllowed"):
            return None  # absent, or a delete marker is current
        raise


# --- writing and deleting -------------------------------------------------------------------------


def prepare_target(ctx: StepContext, handle: Handle, target: str) -> None:
    """Make the target bucket (versioned, tagged) unless it exists; refuse one that is unusable.
    A bucket this step made, now or in an earlier ``start`` of this run, is recorded for undo: one
    that carries our tags, or one this step was about to create (journaled before the call) that is
    now there in this account, untagged and unversioned, because the process died during the call."""
    client = ctx.client("s3")
    status = versioning(ctx, target)
    creating = f"creating bucket {target}"  # CreateBucket takes no tags and no token
    if status == "forbidden":
        raise StepFailed(
            ctx.step.key, f"target bucket {target} exists and is not accessible; refusing to use it"
        )
    if status is None:
        ctx.remember(creating, True)
        config = (
            {}
            if ctx.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
        )
        try:
            client.create_bucket(Bucket=target, **config)
        except Exception as exc:
            # Owned by this account and absent a moment ago: this step's own create call, whose answer
            # was lost and which botocore sent again. Anyone else's bucket is refused.
            if error_code(exc) == "BucketAlreadyExists":
                raise StepFailed(
                    ctx.step.key, f"target bucket {target} already exists; refusing to write into it"
                ) from exc
            if error_code(exc) != "BucketAlreadyOwnedByYou":
                raise
    elif not bucket_is_ours(ctx, target) and not (ctx.memo.get(creating) and status == ""):
        if status != "Enabled":
            raise StepFailed(
                ctx.step.key,
                f"target bucket {target} exists and is not versioned; refusing to write into it",
            )
        return  # an existing, versioned bucket the step did not create: written into, never deleted
    # Created here, or by an earlier start of this step in this run (it carries our tags).
    handle["created_bucket"] = True
    add_resource(ctx, handle, Resource("s3:bucket", target, ctx.region, f"arn:aws:s3:::{target}"))
    client.put_bucket_tagging(Bucket=target, Tagging={"TagSet": aws_tags(ctx)})
    client.put_bucket_versioning(Bucket=target, VersioningConfiguration={"Status": "Enabled"})


def copy_multipart(
    ctx: StepContext,
    source: Mapping[str, str],
    size: int,
    bucket: str,
    key: str,
    extra: Mapping[str, Any],
    part_size: int,
) -> str | None:
    """Objects over 5 GiB: ranged UploadPartCopy (parts of at least ``part_size`` bytes), with the
    source's headers, metadata and tags."""
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
    part = max(part_size, -(-size // 10_000))
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


def delete_versions(ctx: StepContext, bucket: str, objects: list[dict[str, str]]) -> None:
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


def remove_bucket(ctx: StepContext, bucket: str) -> None:
    """Empty the bucket the step created (every version, marker and unfinished upload), delete it.

    Refuses a bucket tagged by another drplan run: the name was freed and taken again."""
    client = ctx.client("s3")
    try:
        tags = {
            t["Key"]: t.get("Value", "") for t in client.get_bucket_tagging(Bucket=bucket).get("TagSet", [])
        }
    except Exception as exc:
        if error_code(exc) in GONE:
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
            delete_versions(ctx, bucket, [{"Key": e["Key"], "VersionId": e["VersionId"]} for e in entries])
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        client.delete_bucket(Bucket=bucket)
    except Exception as exc:
        if error_code(exc) in GONE:
            return
        if error_code(exc) != "BucketNotEmpty":  # poll_undo empties it again
            raise
