"""aws.s3.restore_versions against moto, with real versions written in sequence.

moto stamps ``LastModified`` with the real clock, at one-second resolution like S3. The fixture
writes the "old" versions, sleeps past a second boundary, captures ``at`` (RFC 3339), sleeps again
and writes the "new" versions, so every version is unambiguously before or after ``at``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from drplan.actions import registry
from drplan.actions.s3 import restore as s3_restore
from drplan.aws import READ_ONLY_PREFIXES, AwsSession
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.runner import Runner
from drplan.model import build_plan
from tests.runs import one_step, run_plan, seed

ACTION = "aws.s3.restore_versions"
OLD = {"data/a.txt": b"a2", "data/b.txt": b"b1", "data/c.txt": b"c1", "data/gone.txt": b"g1"}


def _put(s3, key, body, bucket="assets"):
    return s3.put_object(Bucket=bucket, Key=key, Body=body).get("VersionId")


def _bucket(s3, name, *, versioned=True):
    s3.create_bucket(Bucket=name)
    if versioned:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _pause():
    """Past the next whole second: S3 times have one-second resolution."""
    time.sleep(1.05 - (time.time() % 1) + 0.05)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        _bucket(client, "assets")
        yield client


@pytest.fixture
def history(s3):
    """Old versions, then ``at``, then new ones: a overwritten, b overwritten, c untouched,
    gone.txt deleted, new.txt created after ``at``; other/ is outside the prefix."""
    _put(s3, "data/a.txt", b"a1")
    _put(s3, "data/a.txt", b"a2")
    _put(s3, "data/b.txt", b"b1")
    _put(s3, "data/c.txt", b"c1")
    _put(s3, "data/gone.txt", b"g1")
    _put(s3, "other/x.txt", b"x1")
    _pause()
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _pause()
    _put(s3, "data/a.txt", b"a3-bad")
    _put(s3, "data/b.txt", b"b2-bad")
    s3.delete_object(Bucket="assets", Key="data/gone.txt")
    _put(s3, "data/new.txt", b"n1")
    _put(s3, "other/x.txt", b"x2")
    return at


def _current(s3, bucket="assets", prefix=""):
    """Key -> (kind, version id) of what is current, delete markers included."""
    out = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for kind, field in (("version", "Versions"), ("marker", "DeleteMarkers")):
            for entry in page.get(field, []):
                if entry["IsLatest"]:
                    out[entry["Key"]] = (kind, entry["VersionId"])
    return out


def _all_versions(s3, bucket="assets"):
    out = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for field in ("Versions", "DeleteMarkers"):
            out.update((e["Key"], e["VersionId"]) for e in page.get(field, []))
    return out


def _body(s3, key, bucket="assets"):
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _gone(s3, key, bucket="assets"):
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.head_object(Bucket=bucket, Key=key)
    return err.value.response["Error"]["Code"] == "404"


def _context(data, mode="recover", *, read_only=False, calls=None):
    prepared = prepare(build_plan(data), mode, registry(), run_id="t35t1d")
    session = AwsSession(region="us-east-1", read_only=read_only)
    if calls is not None:
        session.on_call = calls.append
    runner = Runner(prepared, session, EventBus("t35t1d"))
    step = prepared.steps["svc.s"]
    return step.action, runner.context(step, step.params)


def test_restores_in_place_to_the_versions_at_the_time(s3, history):
    run = run_plan(one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history}))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs == {"bucket": "assets", "prefix": "data/", "restored": 3, "deleted": 1, "unchanged": 1}
    for key, body in OLD.items():
        assert _body(s3, key) == body
    assert _gone(s3, "data/new.txt")
    assert (
        _current(s3, prefix="data/new.txt")["data/new.txt"][0] == "marker"
    )  # deleted with a marker: nothing lost
    assert _body(s3, "other/x.txt") == b"x2"  # outside the prefix
    assert (
        rec.handle["recovery_point"]["created"]
        == datetime.fromisoformat(history.replace("Z", "+00:00")).isoformat()
    )
    assert rec.resources == []  # nothing created that cleanup should delete


def test_undo_puts_the_bucket_back_exactly(s3, history):
    before_current, before_all = _current(s3), _all_versions(s3)
    run = run_plan(one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history}))
    assert run.record().status == "succeeded", run.record().error
    assert _current(s3) != before_current

    assert run.runner.undo(["svc.s"], reason="test") == []

    assert _current(s3) == before_current
    assert _all_versions(s3) == before_all
    assert _body(s3, "data/a.txt") == b"a3-bad"


def test_a_second_run_changes_nothing(s3, history):
    params = {"bucket": "assets", "prefix": "data/", "at": history}
    assert run_plan(one_step(ACTION, params)).record().status == "succeeded"
    before = _all_versions(s3)
    again = run_plan(one_step(ACTION, params), run_id="s3c0nd")
    assert again.record().outputs["unchanged"] == 5  # the bytes of that time are already current
    assert _all_versions(s3) == before


def test_drill_restores_into_a_new_tagged_bucket_and_cleanup_deletes_it(s3, history):
    before = _all_versions(s3)
    run = run_plan(one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history}), mode="drill")

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    target = rec.outputs["bucket"]
    assert target != "assets" and "t35t1d" in target
    assert rec.outputs == {"bucket": target, "prefix": "data/", "restored": 4, "deleted": 0, "unchanged": 1}
    for key, body in OLD.items():
        assert _body(s3, key, target) == body
    assert _gone(s3, "data/new.txt", target)
    assert s3.get_bucket_versioning(Bucket=target)["Status"] == "Enabled"
    tags = {t["Key"]: t["Value"] for t in s3.get_bucket_tagging(Bucket=target)["TagSet"]}
    assert tags["drplan:run-id"] == "t35t1d" and tags["drplan:mode"] == "drill"
    assert [(r.kind, r.id) for r in rec.resources] == [("s3:bucket", target)]
    assert _all_versions(s3) == before  # the source is untouched

    assert run.runner.undo(["svc.s"], reason="cleanup") == []
    assert target not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert _all_versions(s3) == before


def test_an_existing_versioned_target_is_written_into_and_never_deleted(s3, history):
    _bucket(s3, "restore-here")
    _put(s3, "restored/c.txt", b"c1", bucket="restore-here")  # already right: unchanged
    _put(s3, "restored/new.txt", b"stale", bucket="restore-here")  # did not exist at `at`: deleted
    _put(s3, "restored/keep.txt", b"k", bucket="restore-here")  # not in the source: left alone
    before = _all_versions(s3, "restore-here")
    params = {
        "bucket": "assets",
        "prefix": "data/",
        "at": history,
        "target_bucket": "restore-here",
        "target_prefix": "restored/",
    }

    run = run_plan(one_step(ACTION, params))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs == {
        "bucket": "restore-here",
        "prefix": "restored/",
        "restored": 3,
        "deleted": 1,
        "unchanged": 1,
    }
    for key, body in OLD.items():
        assert _body(s3, key.replace("data/", "restored/"), "restore-here") == body
    assert _gone(s3, "restored/new.txt", "restore-here")
    assert _body(s3, "restored/keep.txt", "restore-here") == b"k"
    assert rec.resources == []

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert _all_versions(s3, "restore-here") == before
    assert "restore-here" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_an_unversioned_target_is_refused_and_untouched(s3, history):
    _bucket(s3, "plain", versioned=False)
    _put(s3, "data/a.txt", b"theirs", bucket="plain")
    run = run_plan(
        one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history, "target_bucket": "plain"})
    )
    assert run.record().status == "failed"
    assert "not versioned" in run.record().error
    assert _body(s3, "data/a.txt", "plain") == b"theirs"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="plain")["Contents"]] == ["data/a.txt"]


def test_source_must_exist_and_be_versioned(s3):
    _bucket(s3, "plain", versioned=False)
    missing = run_plan(one_step(ACTION, {"bucket": "nope-nope", "at": "PT1H"}))
    assert missing.record().status == "failed" and "does not exist" in missing.record().error
    plain = run_plan(one_step(ACTION, {"bucket": "plain", "at": "PT1H"}))
    assert plain.record().status == "failed" and "not versioned" in plain.record().error


def test_an_overlapping_target_prefix_is_refused(s3, history):
    params = {"bucket": "assets", "prefix": "data/", "at": history, "target_prefix": "data/restored/"}
    run = run_plan(one_step(ACTION, params))
    assert run.record().status == "failed" and "overlaps" in run.record().error


def test_a_duration_counts_back_from_the_start_of_the_run(s3, history):
    # Everything is seconds old, so a day before the run nothing under the prefix existed.
    run = run_plan(one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": "P1D"}), mode="drill")
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert (rec.outputs["restored"], rec.outputs["deleted"], rec.outputs["unchanged"]) == (0, 0, 5)
    created = datetime.fromisoformat(rec.handle["recovery_point"]["created"])
    assert abs(created - (run.runner.started_at - timedelta(days=1))) < timedelta(seconds=1)
    assert run.runner.undo(["svc.s"], reason="cleanup") == []


def test_batches_and_long_version_lists(s3, monkeypatch):
    """Small batches and pages: a key whose versions span pages, many polls, same result."""
    monkeypatch.setattr(s3_restore, "BATCH_KEYS", 3)
    for i in range(7):
        _put(s3, "data/many.txt", f"m{i}".encode())
    for i in range(8):
        _put(s3, f"data/k{i}.txt", b"old")
    _pause()
    at = datetime.now(timezone.utc).isoformat()
    _pause()
    for i in range(8):
        _put(s3, f"data/k{i}.txt", b"new")
    _put(s3, "data/many.txt", b"bad")

    run = run_plan(one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": at}))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs["restored"] == 9
    assert _body(s3, "data/many.txt") == b"m6"
    assert all(_body(s3, f"data/k{i}.txt") == b"old" for i in range(8))
    assert len([e for e in run.events if e.kind == "step.progress"]) >= 2
    assert len(rec.handle["written"]) == 9


def test_large_versions_are_copied_in_parts_with_their_metadata(s3, monkeypatch):
    monkeypatch.setattr(s3_restore, "COPY_LIMIT", 6 * 1024**2)
    monkeypatch.setattr(s3_restore, "PART_SIZE", 5 * 1024**2)
    big = bytes(range(256)) * (11 * 1024**2 // 256)
    s3.put_object(
        Bucket="assets",
        Key="big.bin",
        Body=big,
        ContentType="application/x-test",
        Metadata={"owner": "ops"},
        Tagging="tier=gold",
    )
    _pause()
    at = datetime.now(timezone.utc).isoformat()
    _pause()
    _put(s3, "big.bin", b"truncated")

    run = run_plan(one_step(ACTION, {"bucket": "assets", "at": at}))

    assert run.record().status == "succeeded", run.record().error
    obj = s3.get_object(Bucket="assets", Key="big.bin")
    assert obj["Body"].read() == big
    assert obj["ContentType"] == "application/x-test" and obj["Metadata"] == {"owner": "ops"}
    assert s3.get_object_tagging(Bucket="assets", Key="big.bin")["TagSet"] == [
        {"Key": "tier", "Value": "gold"}
    ]


def test_an_archived_version_fails_the_step(s3):
    s3.put_object(Bucket="assets", Key="cold.txt", Body=b"c", StorageClass="GLACIER")
    _pause()
    at = datetime.now(timezone.utc).isoformat()
    _pause()
    _put(s3, "cold.txt", b"new")
    run = run_plan(one_step(ACTION, {"bucket": "assets", "at": at}))
    assert run.record().status == "failed"
    assert "archived" in run.record().error


def test_preflight_counts_and_makes_only_read_calls(s3, history):
    calls = []
    action, ctx = _context(
        one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history}), read_only=True, calls=calls
    )

    results = action.preflight(ctx)

    assert [r.status for r in results] == ["ok", "ok"]
    assert results[0].facts["recovery_point"].startswith("s3://assets/data/@")
    assert {k: results[1].facts[k] for k in ("restored", "deleted", "unchanged")} == {
        "restored": 3,
        "deleted": 1,
        "unchanged": 1,
    }
    assert calls and all(c.operation.startswith(READ_ONLY_PREFIXES) for c in calls)


def test_preflight_of_a_drill_checks_the_target_name(s3, history):
    action, ctx = _context(
        one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history}), "drill", read_only=True
    )
    results = action.preflight(ctx)
    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert "is free" in results[1].message
    assert results[2].facts["restored"] == 4

    _bucket(s3, ctx.params["target_bucket"], versioned=False)
    results = action.preflight(ctx)
    assert results[1].status == "error" and "not versioned" in results[1].message


def test_preflight_errors_on_a_missing_or_unversioned_source(s3):
    _bucket(s3, "plain", versioned=False)
    action, ctx = _context(one_step(ACTION, {"bucket": "nope-nope", "at": "PT1H"}), read_only=True)
    assert [r.status for r in action.preflight(ctx)] == ["error"]
    action, ctx = _context(one_step(ACTION, {"bucket": "plain", "at": "PT1H"}), read_only=True)
    assert "not versioned" in action.preflight(ctx)[0].message


def test_seed_gives_a_restore_at_pt1h_something_to_do(s3):
    """The seed backdates its versions in moto's backend: at PT1H three keys come back, one goes."""
    data = one_step(ACTION, {"bucket": "seeded", "prefix": "exports/", "at": "PT1H"})
    _, ctx = _context(data)
    seed(ctx)
    before = _all_versions(s3, "seeded")
    seed(ctx)  # idempotent
    assert _all_versions(s3, "seeded") == before

    run = run_plan(data)

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert (rec.outputs["restored"], rec.outputs["deleted"], rec.outputs["unchanged"]) == (3, 1, 1)
    assert _body(s3, "exports/orders/2024-01.csv", "seeded").startswith(b"# orders/2024-01.csv (v2)")
    assert _body(s3, "exports/config/settings.json", "seeded").startswith(b"# config/settings.json (v1)")
    assert _gone(s3, "exports/reports/created-later.csv", "seeded")


def test_throttling_in_the_middle_of_a_batch_resumes_without_writing_twice(s3, history, monkeypatch):
    """The runner repeats a throttled poll; the cursor and the record of writes make that safe."""
    from botocore.exceptions import ClientError

    real_copy = s3_restore.RestoreVersions._copy
    calls = {"n": 0}

    def flaky_copy(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "CopyObject")
        return real_copy(self, *args, **kwargs)

    monkeypatch.setattr(s3_restore.RestoreVersions, "_copy", flaky_copy)
    before = _all_versions(s3)

    run = run_plan(one_step(ACTION, {"bucket": "assets", "prefix": "data/", "at": history}))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert "step.throttled" in run.kinds()
    assert rec.outputs["restored"] == 3 and rec.outputs["deleted"] == 1
    assert len(_all_versions(s3) - before) == 4  # one write per changed key, none twice
    for key, body in OLD.items():
        assert _body(s3, key) == body


def test_seed_and_drill_through_moto_server(moto_server):
    """The sandbox's setting: moto's HTTP server in this process. The seed's backdating reaches the
    server's backend, so a drill at PT1H restores three keys into its own bucket."""
    data = one_step(ACTION, {"bucket": "seeded", "prefix": "exports/", "at": "PT1H"})
    prepared = prepare(build_plan(data), "recover", registry(), run_id="seed")
    session = AwsSession(region="us-east-1", endpoint_url=moto_server)
    step = prepared.steps["svc.s"]
    seed(Runner(prepared, session, EventBus("seed")).context(step, step.params))

    run = run_plan(data, "drill", aws=AwsSession(region="us-east-1", endpoint_url=moto_server))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert (rec.outputs["restored"], rec.outputs["deleted"], rec.outputs["unchanged"]) == (4, 0, 1)
    client = session.client("s3")
    assert _body(client, "exports/orders/2024-02.csv", rec.outputs["bucket"]).startswith(
        b"# orders/2024-02.csv (v1)"
    )
    assert run.runner.undo(["svc.s"], reason="cleanup") == []
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["seeded"]


def test_a_bucket_left_by_an_earlier_start_of_the_same_step_is_adopted(s3, history):
    """start() repeated after throttling finds the bucket it created, tagged with its run and step."""
    params = {"bucket": "assets", "prefix": "data/", "at": history, "target_bucket": "half-made"}
    s3.create_bucket(Bucket="half-made")
    tags = [{"Key": "drplan:run-id", "Value": "t35t1d"}, {"Key": "drplan:step", "Value": "svc.s"}]
    s3.put_bucket_tagging(Bucket="half-made", Tagging={"TagSet": tags})

    run = run_plan(one_step(ACTION, params))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert [(r.kind, r.id) for r in rec.resources] == [("s3:bucket", "half-made")]
    assert s3.get_bucket_versioning(Bucket="half-made")["Status"] == "Enabled"
    assert run.runner.undo(["svc.s"], reason="test") == []
    assert "half-made" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_preflight_refuses_archived_versions(s3):
    s3.put_object(Bucket="assets", Key="cold.txt", Body=b"c", StorageClass="DEEP_ARCHIVE")
    _pause()
    at = datetime.now(timezone.utc).isoformat()
    _pause()
    _put(s3, "cold.txt", b"new")
    action, ctx = _context(one_step(ACTION, {"bucket": "assets", "at": at}), read_only=True)
    counted = action.preflight(ctx)[-1]
    assert counted.status == "error" and "archived" in counted.message
