"""The runner: dependency order, failures, throttling, retries, rollback, interruption, resolution."""

from __future__ import annotations

import random
import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from drplan.aws import AwsSession
from drplan.engine.worker import resolve
from drplan.errors import StepFailed
from tests.runs import plan_data, run_plan

TABLE = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


def restore(source: str, target: str) -> dict:
    return {
        "id": "restore",
        "uses": "aws.dynamodb.restore_backup",
        "with": {"source_table": source, "target": target},
    }


@pytest.fixture
def ddb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for name in ("orders", "carts", "users"):
            client.create_table(TableName=name, **TABLE)
            client.put_item(TableName=name, Item={"pk": {"S": f"{name}-1"}})
            client.create_backup(TableName=name, BackupName=f"{name}-nightly")
        yield client


def test_dependents_of_a_failed_step_are_skipped_and_independent_branches_finish(ddb):
    data = plan_data(
        {
            "broken": {"steps": [restore("no-such-table", "broken-restored")]},
            "needs-broken": {"depends_on": ["broken"], "steps": [restore("carts", "carts-restored")]},
            "independent": {"steps": [restore("users", "users-restored")]},
        }
    )
    run = run_plan(data)
    records = run.outcome.records
    assert records["broken.restore"].status == "failed"
    assert "no available backups" in records["broken.restore"].error
    assert records["needs-broken.restore"].status == "skipped"
    assert "broken.restore" in records["needs-broken.restore"].reason
    assert records["independent.restore"].status == "succeeded"
    tables = ddb.list_tables()["TableNames"]
    assert "users-restored" in tables and "carts-restored" not in tables


def test_fail_fast_starts_nothing_new(ddb):
    data = plan_data(
        {
            "broken": {"steps": [restore("no-such-table", "x-restored")]},
            "later": {
                "steps": [
                    {"id": "w", "uses": "wait", "with": {"duration": "PT0.3S"}},
                    restore("users", "users-restored"),
                ]
            },
        }
    )
    run = run_plan(data, parallelism=1, fail_fast=True)
    assert run.outcome.records["broken.restore"].status == "failed"
    statuses = {k: r.status for k, r in run.outcome.records.items()}
    assert statuses["later.restore"] == "not_started"
    assert "users-restored" not in ddb.list_tables()["TableNames"]


def test_throttling_on_a_third_of_calls_still_completes(ddb):
    rng = random.Random(7)
    throttled = []

    def flaky(client):
        def maybe_throttle(model, **kwargs):
            if rng.random() < 0.3:
                throttled.append(model.name)
                raise ClientError(
                    {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, model.name
                )

        client.meta.events.register("before-call", maybe_throttle)

    data = plan_data(
        {name: {"steps": [restore(name, f"{name}-restored")]} for name in ("orders", "carts", "users")}
    )
    run = run_plan(data, aws=AwsSession(region="us-east-1", customize=flaky))
    assert {r.status for r in run.outcome.records.values()} == {"succeeded"}, {
        k: r.error for k, r in run.outcome.records.items()
    }
    assert throttled, "the fault injector never fired"
    # Every throttled call is waited out and reported, except the best-effort tagging right after a
    # table restore (start() must not fail after its create call; the first poll tags instead).
    reported = run.kinds().count("step.throttled")
    assert len([n for n in throttled if n != "TagResource"]) <= reported <= len(throttled)
    for name in ("orders", "carts", "users"):
        assert ddb.scan(TableName=f"{name}-restored")["Count"] == 1


def test_step_retries_undo_the_failed_attempt_first(ddb):
    attempts = {"n": 0}

    def fail_first_poll(client):
        def hook(model, **kwargs):
            if model.name == "DescribeTable" and attempts["n"] == 0:
                attempts["n"] += 1
                raise ClientError({"Error": {"Code": "ValidationException", "Message": "boom"}}, model.name)

        client.meta.events.register("before-call", hook)

    data = plan_data({"svc": {"steps": [{**restore("orders", "orders-restored"), "retries": 1}]}})
    run = run_plan(data, aws=AwsSession(region="us-east-1", customize=fail_first_poll))
    rec = run.outcome.records["svc.restore"]
    assert rec.status == "succeeded", rec.error
    assert rec.attempts == 2
    kinds = run.kinds("svc.restore")
    assert kinds.index("undo.succeeded") < kinds.index("step.retrying")
    assert ddb.scan(TableName="orders-restored")["Count"] == 1


def test_rollback_undoes_completed_steps_in_reverse_order(ddb):
    data = plan_data(
        {
            "a": {"steps": [restore("orders", "orders-restored")]},
            "b": {"depends_on": ["a"], "steps": [restore("carts", "carts-restored")]},
            "c": {"depends_on": ["b"], "steps": [restore("missing", "missing-restored")]},
        }
    )
    run = run_plan(data)
    assert run.outcome.records["c.restore"].status == "failed"
    assert run.runner.rollback() == []
    undone = [e.step for e in run.events if e.kind == "undo.succeeded"]
    assert undone == ["b.restore", "a.restore"]
    tables = ddb.list_tables()["TableNames"]
    assert "orders-restored" not in tables and "carts-restored" not in tables
    assert {"orders", "carts"} <= set(tables)  # sources untouched


def test_interrupt_stops_starting_steps_and_records_in_flight_jobs(ddb):
    data = plan_data(
        {
            "slow": {
                "steps": [
                    {"id": "w", "uses": "wait", "with": {"duration": "PT30S"}},
                    restore("orders", "orders-restored"),
                ]
            },
        }
    )
    timer_run = {}

    def start_and_interrupt():
        import time as _t

        _t.sleep(0.3)
        timer_run["runner"].interrupt()

    from drplan.actions import registry
    from drplan.engine.events import EventBus
    from drplan.engine.prepare import prepare
    from drplan.engine.records import RunOptions
    from drplan.engine.runner import Runner
    from drplan.model import build_plan

    prepared = prepare(build_plan(data), "recover", registry(), run_id="int")
    runner = Runner(prepared, AwsSession(region="us-east-1"), EventBus("int"), RunOptions(poll_initial=0.01))
    timer_run["runner"] = runner
    threading.Thread(target=start_and_interrupt).start()
    outcome = runner.run()
    assert outcome.interrupted
    assert outcome.records["slow.w"].status == "interrupted"
    assert outcome.records["slow.restore"].status in ("skipped", "not_started")
    assert "orders-restored" not in ddb.list_tables()["TableNames"]


def test_unresolved_reference_fails_the_step_that_needs_it(ddb):
    data = plan_data(
        {
            "svc": {
                "steps": [
                    {"id": "w", "uses": "wait", "with": {"duration": "PT0S"}},
                    {
                        "id": "c",
                        "uses": "check.tcp",
                        "with": {"host": "${svc.w.endpoint}", "port": 1},
                        "after": [],
                    },
                ]
            }
        }
    )
    run = run_plan(data)
    rec = run.outcome.records["svc.c"]
    assert rec.status == "failed"
    assert "cannot resolve `${svc.w.endpoint}`" in rec.error


def test_resolve_keeps_types_for_whole_references_and_substitutes_inside_strings():
    outputs = {"db.restore": {"endpoint": "db.example.com", "port": 5432}}
    params = {
        "host": "${db.restore.endpoint}",
        "port": "${db.restore.port}",
        "url": "pg://${db.restore.endpoint}:${db.restore.port}/x",
    }
    assert resolve(params, outputs) == {
        "host": "db.example.com",
        "port": 5432,
        "url": "pg://db.example.com:5432/x",
    }
    with pytest.raises(StepFailed, match="has not succeeded"):
        resolve({"x": "${other.step.out}"}, outputs)
    with pytest.raises(StepFailed, match="produced no output `nope`"):
        resolve({"x": "${db.restore.nope}"}, outputs)


def test_per_action_concurrency_limits_are_respected(ddb):
    data = plan_data(
        {
            f"s{i}": {"steps": [restore(name, f"{name}-r{i}")]}
            for i, name in enumerate(["orders", "carts", "users"] * 2)
        }
    )
    run = run_plan(data, group_limits={"aws.dynamodb.restore_backup": 1})
    starts = [e for e in run.events if e.kind in ("step.started", "step.succeeded")]
    # With a limit of 1, every restore finishes before the next one starts.
    kinds = [e.kind for e in starts]
    assert kinds == ["step.started", "step.succeeded"] * 6, kinds
    assert {r.status for r in run.outcome.records.values()} == {"succeeded"}


def test_live_progress_on_a_terminal_and_plain_lines_elsewhere():
    import io

    from drplan.engine.events import Event
    from drplan.report.progress import LiveProgress, PlainProgress

    events = [
        Event(
            "run.started",
            "r1",
            0.0,
            data={"mode": "drill", "plan": "p", "account": "1", "region": "us-east-1"},
        ),
        Event("step.started", "r1", 1.0, "db.restore", {"attempt": 1}),
        Event("step.progress", "r1", 2.0, "db.restore", {"note": "restoring (CREATING)"}),
        Event("step.failed", "r1", 3.0, "db.restore", {"error": "boom", "duration": 2.0}),
        Event("run.finished", "r1", 4.0, data={"status": "failed", "exit_code": 1}),
    ]
    plain = io.StringIO()
    for e in events:
        PlainProgress(plain)(e)
    lines = plain.getvalue().splitlines()
    assert len(lines) == 5 and "db.restore FAILED: boom" in lines[3]

    screen = io.StringIO()
    live = LiveProgress(["db.restore", "db.check"], stream=screen)
    for e in events:
        live(e)
    shown = screen.getvalue()
    assert "db.restore" in shown and "failed" in shown and "db.check" in shown and "pending" in shown


def test_a_resource_created_before_start_fails_is_journaled_and_cleaned_up():
    """start() of an S3 restore creates the drill bucket, then a later call in start() fails:
    there is no handle, but the bucket was recorded the moment it was created and cleanup
    removes it by kind."""
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="assets-example")
        s3.put_bucket_versioning(Bucket="assets-example", VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket="assets-example", Key="a.txt", Body=b"old")

        def deny_tagging(client):
            def hook(model, **kwargs):
                if model.name == "PutBucketTagging":
                    raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, model.name)

            client.meta.events.register("before-call", hook)

        data = plan_data(
            {
                "files": {
                    "steps": [
                        {
                            "id": "rewind",
                            "uses": "aws.s3.restore_versions",
                            "with": {"bucket": "assets-example", "at": "PT1S"},
                        }
                    ]
                }
            }
        )
        run = run_plan(
            data, mode="drill", run_id="orphan1", aws=AwsSession(region="us-east-1", customize=deny_tagging)
        )
        rec = run.outcome.records["files.rewind"]
        assert rec.status == "failed" and not rec.handle
        assert [r.id for r in rec.resources] == ["assets-example-drill-orphan1"]
        assert "step.resource" in run.kinds("files.rewind")
        assert run.runner.undo(["files.rewind"], reason="drill cleanup") == []
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert names == ["assets-example"]


def test_a_rollback_that_cannot_undo_everything_exits_3(ddb, tmp_path):
    from drplan.engine.records import RunOptions
    from drplan.model import build_plan
    from drplan.runs import RunRequest
    from drplan.runs import run_plan as run_request
    from tests.runs import FAST

    def deny_deletes(client):
        def hook(model, **kwargs):
            if model.name == "DeleteTable":
                raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, model.name)

        client.meta.events.register("before-call", hook)

    plan = build_plan(
        plan_data(
            {
                "a": {"steps": [restore("orders", "orders-restored")]},
                "b": {"depends_on": ["a"], "steps": [restore("missing", "missing-restored")]},
            }
        )
    )
    request = RunRequest(plan, "recover", tmp_path, options=RunOptions(**FAST), rollback_on_failure=True)
    result = run_request(request, AwsSession(region="us-east-1", customize=deny_deletes))
    assert result.rollback_failed == ["a.restore"]
    assert result.exit_code == 3
    assert "orders-restored" in ddb.list_tables()["TableNames"]


def test_a_rollback_reports_undone_only_the_steps_whose_undo_does_something(tmp_path):
    """``command`` and ``aws.lambda.invoke`` undo only with their optional ``undo`` parameters: a
    step without them has nothing to reverse, and the rollback must not call it undone."""
    marker = tmp_path / "undone.txt"
    data = plan_data(
        {
            "a": {
                "steps": [
                    {
                        "id": "with-undo",
                        "uses": "command",
                        "with": {"run": ["true"], "undo": ["touch", str(marker)]},
                    },
                    {"id": "without-undo", "uses": "command", "with": {"run": ["true"]}},
                ]
            },
            "b": {
                "depends_on": ["a"],
                "steps": [{"id": "fails", "uses": "command", "with": {"run": ["false"]}}],
            },
        },
        allow_commands=True,
    )
    run = run_plan(data, allow_commands=True)
    assert run.outcome.records["b.fails"].status == "failed"
    assert run.runner.rollback() == []
    assert [e.step for e in run.events if e.kind.startswith("undo.")] == ["a.with-undo", "a.with-undo"]
    assert marker.exists()


def test_the_run_starts_the_step_with_the_least_slack_first():
    """Parallelism 1: the run starts the tier-1 step (RTO 30 min, estimated 20 min) before the head
    of a longer chain whose service has 6 hours, as the prediction does (tests/test_prediction.py
    works the figures out); the waits themselves are short, the estimates decide."""

    def wait(step: str, minutes: int, **extra):
        return {
            "id": step,
            "uses": "wait",
            "with": {"duration": "PT0.05S"},
            "estimate": f"PT{minutes}M",
            **extra,
        }

    data = plan_data(
        {
            "analytics": {
                "objectives": {"rto": "PT6H"},
                "steps": [wait("load", 60), wait("index", 60, after=["load"])],
            },
            "payments": {"objectives": {"rto": "PT30M"}, "steps": [wait("restore", 20)]},
        },
        run={"parallelism": 1},
    )
    run = run_plan(data)
    started = [e.step for e in run.events if e.kind == "step.started"]
    assert started == ["payments.restore", "analytics.load", "analytics.index"]
