"""aws.s3.restore_versions exported to Step Functions and executed by moto's interpreter: the same
objects and versions afterwards as drplan's own run, the same outputs, the same failures with the
same messages, and a drill that leaves nothing behind.

The plans are written from docs/actions.md. moto stamps versions with the clock: the seed sets
their times back in moto's S3 backend, so ``at`` falls between versions by minutes and hours. The
listing's page size is the local action's batch (``BATCH_KEYS``), set small here for both runs, so
keys span pages. moto picks version ids: the comparison names versions by their ETag.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
from tests.moto_error_names import moto_names_errors_as_step_functions
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    records,
    statuses,
)

ACTION = "aws.s3.restore_versions"
SOURCE = "shop-assets"
#: Versions of each key under static/ (and one outside it): (minutes before now, body or None for
#: a delete marker, storage class), oldest first. ``at`` is PT1H: between most of them.
HISTORY: dict[str, list[tuple[int, str | None, str]]] = {
    "static/a.css": [(180, "a1", "STANDARD"), (30, "a2", "STANDARD")],  # back to a1
    "static/b.js": [(180, "b1", "STANDARD")],  # unchanged
    "static/new.txt": [(20, "n1", "STANDARD")],  # younger than `at`: deleted
    "static/gone.txt": [(180, "g1", "STANDARD_IA"), (10, None, "")],  # deleted since: back (IA)
    "static/long-dead": [(300, "d1", "STANDARD"), (240, None, "")],  # deleted then and now
    "static/same": [(180, "s", "STANDARD"), (30, "s", "STANDARD")],  # same bytes: unchanged
    "static/many": [(400 - 50 * i, f"m{i}", "STANDARD") for i in range(7)],  # spans pages; m6 then and now
    "other/x": [(180, "x1", "STANDARD"), (5, "x2", "STANDARD")],  # outside the prefix
}
PAGE = 3


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pages of three versions, locally and in the exported machine (which reads the same value)."""
    from drplan.actions.s3 import restore

    monkeypatch.setattr(restore, "BATCH_KEYS", PAGE)
    # JSONata evaluated, and S3's errors named as Step Functions names them (moto: s3.s3Exception).
    with moto_evaluates_jsonata(), moto_names_errors_as_step_functions():
        yield


def rewind(step: str = "rewind", **params: Any) -> dict[str, Any]:
    return {
        "id": step,
        "uses": ACTION,
        "with": {"bucket": SOURCE, "prefix": "static/", "at": "PT1H", **params},
    }


def one_service(**params: Any) -> dict[str, Any]:
    return plan_data({"assets": {"steps": [rewind(**params)]}}, name="assets")


def seed(*, versioned: bool = True) -> None:
    from moto.s3.models import s3_backends

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=SOURCE)
    if versioned:
        s3.put_bucket_versioning(Bucket=SOURCE, VersioningConfiguration={"Status": "Enabled"})
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # moto keeps naive UTC
    for key, versions in HISTORY.items():
        for _, body, storage in versions:
            if body is None:
                s3.delete_object(Bucket=SOURCE, Key=key)
            else:
                s3.put_object(Bucket=SOURCE, Key=key, Body=body.encode(), StorageClass=storage)
        if not versioned:
            continue
        stored = s3_backends[DEFAULT_ACCOUNT_ID]["global"].buckets[SOURCE].keys.getlist(key)
        assert len(stored) == len(versions)
        for entry, (minutes, _, _) in zip(stored, versions, strict=True):
            entry.last_modified = now - dt.timedelta(minutes=minutes)


def s3_state() -> dict[str, Any]:
    """Every bucket but the coordination's: per key, its versions and markers newest first (the
    ETag of a version, ``marker`` for a delete marker), the current body, and storage classes."""
    s3 = boto3.client("s3", region_name=REGION)
    out: dict[str, Any] = {}
    for b in s3.list_buckets()["Buckets"]:
        name = b["Name"]
        keys: dict[str, Any] = {}
        page = s3.list_object_versions(Bucket=name)
        entries = [(v["Key"], v["LastModified"], "v", v) for v in page.get("Versions", [])]
        entries += [(m["Key"], m["LastModified"], "m", m) for m in page.get("DeleteMarkers", [])]
        for key, _, kind, e in sorted(entries, key=lambda x: (x[0], -x[1].timestamp(), x[2] == "m")):
            keys.setdefault(key, {"versions": []})["versions"].append(
                "marker" if kind == "m" else (e["ETag"], e.get("StorageClass"))
            )
        for key, value in keys.items():
            try:
                value["body"] = s3.get_object(Bucket=name, Key=key)["Body"].read().decode()
            except s3.exceptions.NoSuchKey:
                value["body"] = None
        tags: dict[str, str] = {}
        with contextlib.suppress(s3.exceptions.ClientError):  # untagged
            tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
        tags.pop("drplan:created", None)
        versioning = s3.get_bucket_versioning(Bucket=name).get("Status")
        out[name] = {"keys": keys, "tags": tags, "versioning": versioning}
    return out


def _created_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(data: dict[str, Any], mode: str = "recover") -> tuple[dict[str, Any], Any]:
    with mock_aws():
        seed()
        local = run_plan(data, mode, run_id=RUN_ID)  # type: ignore[arg-type]
        return s3_state(), local


def _exported(data: dict[str, Any], mode: str = "recover", **seeding: Any) -> tuple[Any, dict[str, Any], Any]:
    exported = export_plan(build_plan(data), mode, options=FAST, history_budget=ONE_MACHINE)  # type: ignore[arg-type]
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        seed(**seeding)
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        return exported, described, s3_state()


# --- export ------------------------------------------------------------------------------------------


def test_every_variant_exports_and_lints() -> None:
    variants = [
        one_service(),
        one_service(prefix="", at="2026-01-01T00:00:00Z"),
        one_service(target_bucket="shop-assets-restored"),
        one_service(target_bucket="shop-assets-restored", target_prefix="rewound/"),
        one_service(target_bucket=SOURCE, target_prefix="rewound/"),
        one_service(target_bucket=SOURCE, target_prefix="static/sub/"),  # overlaps: fails when run
    ]
    for data in variants:
        for mode in ("recover", "drill"):
            exported = export_plan(build_plan(data), mode, history_budget=ONE_MACHINE)  # type: ignore[arg-type]
            assert lint_definition(exported.definition) == [], (data, mode)
    actions = {a for s in exported.policy["Statement"] for a in s["Action"]}
    assert {"s3:ListBucketVersions", "s3:PutObject", "s3:DeleteBucket", "s3:GetBucketVersioning"} <= actions


def test_refused_with_the_reason() -> None:
    with pytest.raises(ExportRefused, match="`at` 'yesterday' is not an RFC 3339"):
        export_plan(build_plan(one_service(at="yesterday")), "recover", history_budget=ONE_MACHINE)
    data = one_service()
    data["services"]["assets"]["steps"][0]["retries"] = 1
    with pytest.raises(ExportRefused, match="`retries` in a recovery"):
        export_plan(build_plan(data), "recover", history_budget=ONE_MACHINE)
    export_plan(
        build_plan(data), "drill", history_budget=ONE_MACHINE
    )  # a drill's undo deletes its own bucket: retried exactly
    in_place = build_plan(one_service())
    with pytest.raises(ExportRefused, match="--rollback-on-failure of a restore in place"):
        export_plan(in_place, "recover", history_budget=ONE_MACHINE, rollback_on_failure=True)
    export_plan(in_place, "recover", history_budget=ONE_MACHINE)  # without rollback: no undo needed


# --- execution -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_recovery_in_place_leaves_the_versions_the_local_recovery_leaves() -> None:
    data = one_service()
    expected, local = _local(data)
    rec = local.outcome.records["assets.rewind"]
    assert rec.status == "succeeded", rec.error
    assert rec.outputs == {"bucket": SOURCE, "prefix": "static/", "restored": 2, "deleted": 1, "unchanged": 4}
    keys = expected[SOURCE]["keys"]
    assert keys["static/a.css"]["body"] == "a1" and keys["static/gone.txt"]["body"] == "g1"
    assert keys["static/gone.txt"]["versions"][0][1] == "STANDARD_IA"
    assert keys["static/many"]["body"] == "m6" and keys["static/new.txt"]["body"] is None
    assert keys["other/x"]["body"] == "x2"

    exported, described, after = _exported(data)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == expected
    out = records(described)["steps"][exported.sids["assets.rewind"]]["out"]
    assert out == rec.outputs


@pytest.mark.slow
def test_a_recovery_into_a_new_bucket_as_locally() -> None:
    data = one_service(target_bucket="shop-assets-restored", target_prefix="rewound/")
    expected, local = _local(data)
    rec = local.outcome.records["assets.rewind"]
    assert rec.status == "succeeded", rec.error
    restored = expected["shop-assets-restored"]
    assert restored["versioning"] == "Enabled" and restored["tags"]["drplan:step"] == "assets.rewind"
    assert sorted(restored["keys"]) == [
        "rewound/a.css", "rewound/b.js", "rewound/gone.txt", "rewound/many", "rewound/same",
    ]  # fmt: skip
    exported, described, after = _exported(data)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == expected
    assert records(described)["steps"][exported.sids["assets.rewind"]]["out"] == rec.outputs


@pytest.mark.slow
def test_into_another_prefix_of_the_same_bucket_looks_at_each_key() -> None:
    """An existing target (the source bucket, another prefix): HeadObject decides, as locally."""
    data = one_service(target_bucket=SOURCE, target_prefix="rewound/")
    expected, local = _local(data)
    rec = local.outcome.records["assets.rewind"]
    assert rec.status == "succeeded", rec.error
    exported, described, after = _exported(data)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == expected
    assert records(described)["steps"][exported.sids["assets.rewind"]]["out"] == rec.outputs


@pytest.mark.slow
def test_a_drill_restores_into_its_own_bucket_and_removes_it() -> None:
    data = one_service()
    with mock_aws():
        seed()
        before = s3_state()
        local = run_plan(data, "drill", run_id=RUN_ID)
        rec = local.outcome.records["assets.rewind"]
        assert rec.status == "succeeded", rec.error
        drill_bucket = rec.outputs["bucket"]
        assert drill_bucket.startswith(f"{SOURCE}-") and RUN_ID in drill_bucket
        assert local.runner.cleanup() == []
        assert s3_state() == before
    exported, described, after = _exported(data, "drill")
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == before
    doc = records(described)
    assert doc["steps"][exported.sids["assets.rewind"]]["out"] == rec.outputs
    assert doc["cleanup"][exported.sids["assets.rewind"]] == {"status": "removed"}


def _failing() -> dict[str, Any]:
    return plan_data(
        {
            "missing": {"steps": [rewind(bucket="no-such-bucket")]},
            "overlap": {"steps": [rewind(target_bucket=SOURCE, target_prefix="static/sub/")]},
        },
        name="assets",
    )


@pytest.mark.slow
def test_failures_have_the_local_messages() -> None:
    expected, local = _local(_failing())
    errors = {k: r.error for k, r in local.outcome.records.items()}
    assert errors == {
        "missing.rewind": "bucket no-such-bucket does not exist",
        "overlap.rewind": "target prefix 'static/sub/' overlaps prefix 'static/' in bucket shop-assets; "
        "restored objects would be restored again",
    }
    exported, described, after = _exported(_failing())
    assert after == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == {k: "failed" for k in errors}
    assert {k: doc["steps"][exported.sids[k]]["cause"] for k in errors} == errors


@pytest.mark.slow
def test_an_unversioned_source_fails_as_locally() -> None:
    data = one_service()
    with mock_aws():
        seed(versioned=False)
        local = run_plan(data, run_id=RUN_ID)
        expected = s3_state()
    error = local.outcome.records["assets.rewind"].error
    assert error == f"bucket {SOURCE} is not versioned: there are no older versions to restore"
    exported, described, after = _exported(data, versioned=False)
    assert after == expected
    assert records(described)["steps"][exported.sids["assets.rewind"]]["cause"] == error


def test_history_of_the_definition_is_json() -> None:
    text = json.dumps(
        export_plan(build_plan(one_service()), "recover", history_budget=ONE_MACHINE).definition
    )
    assert "aws-sdk:s3:copyObject" in text and "aws-sdk:s3:listObjectVersions" in text
