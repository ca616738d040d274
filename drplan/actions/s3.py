"""Amazon S3: put the objects under a prefix back to their versions at a point in time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action, suffixed


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
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:GetBucketVersioning",
        "s3:CreateBucket",
        "s3:PutBucketTagging",
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

    def isolate(self, params: Mapping[str, Any], suffix: str, *, redirected: bool) -> Mapping[str, Any] | None:
        # Drills restore into a new bucket they create and delete; never into the source.
        target = str(params.get("target_bucket") or params["bucket"])
        return {**params, "target_bucket": suffixed(target, suffix).lower()}


ACTIONS = (RestoreVersions,)
