"""aws.rds.switchover_global_cluster and aws.rds.failover_global_cluster.

moto 5.2 emulates Aurora global databases but not their switchover or failover, so the actions are
tested with botocore's Stubber on real clients (it checks every request against the RDS and
CloudWatch models) with responses shaped as AWS answers; then end to end against moto behind the
sandbox's emulation of the two calls (:mod:`drplan.sandbox.global_emulator`), served over HTTP as the
sandbox serves it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from drplan.actions import registry
from drplan.actions.base import AwsAccess, handle_recovery_point
from drplan.aws import AwsSession
from drplan.document import read_document
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.runner import Runner
from drplan.errors import StepFailed
from drplan.model import build_plan
from drplan.pipeline import validate_document
from tests.runs import FAST, one_step, plan_data, run_plan

SWITCH = "aws.rds.switchover_global_cluster"
FAIL = "aws.rds.failover_global_cluster"
GLOBAL = "orders-global"
EAST = "arn:aws:rds:us-east-1:123456789012:cluster:orders-east"
WEST = "arn:aws:rds:us-west-2:123456789012:cluster:orders-west"


class Stubbed(AwsAccess):
    """One stubbed client per service, in the recovery Region (us-west-2)."""

    def __init__(self) -> None:
        self.clients = {
            service: boto3.client(
                service, region_name="us-west-2", aws_access_key_id="a", aws_secret_access_key="b"
            )
            for service in ("rds", "cloudwatch")
        }
        self.stubs = {service: Stubber(client) for service, client in self.clients.items()}

    def client(
        self,
        service: str,
        *,
        region: str | None = None,
        role_arn: str | None = None,
        endpoint_url: str | None = None,
    ) -> Any:
        assert region == "us-west-2", region  # the step's Region: the one that becomes the primary
        return self.clients[service]

    def region_of(self, region: str | None) -> str:
        return region or "us-east-1"

    @property
    def rds(self) -> Stubber:
        return self.stubs["rds"]

    @property
    def cloudwatch(self) -> Stubber:
        return self.stubs["cloudwatch"]

    def __enter__(self) -> Stubbed:
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()
            stub.deactivate()


def params(**extra: Any) -> dict[str, Any]:
    return {"global_cluster": GLOBAL, "target_cluster": "orders-west", **extra}


def data(uses: str = SWITCH, **extra: Any) -> dict[str, Any]:
    return one_step(uses, params(**extra), region="us-west-2")


def step_context(plan: dict[str, Any], aws: AwsAccess, mode: str = "recover"):
    prepared = prepare(build_plan(plan), mode, registry(), run_id="t35t1d")  # type: ignore[arg-type]
    runner = Runner(prepared, aws, EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def global_cluster(writer: str = EAST, state: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """DescribeGlobalClusters' answer, as AWS gives it."""
    members = [
        {
            "DBClusterArn": arn,
            "IsWriter": arn == writer,
            "Readers": [other for other in (EAST, WEST) if other != arn] if arn == writer else [],
            **(
                {}
                if arn == writer
                else {"GlobalWriteForwardingStatus": "disabled", "SynchronizationStatus": "connected"}
            ),
        }
        for arn in (EAST, WEST)
    ]
    cluster: dict[str, Any] = {
        "GlobalClusterIdentifier": GLOBAL,
        "GlobalClusterResourceId": "cluster-5f3b1e0d2c4a6b8e",
        "GlobalClusterArn": f"arn:aws:rds::123456789012:global-cluster:{GLOBAL}",
        "Status": "available" if state is None else state["Status"],
        "Engine": "aurora-postgresql",
        "EngineVersion": "16.4",
        "StorageEncrypted": True,
        "DeletionProtection": False,
        "GlobalClusterMembers": members,
        "Endpoint": f"{GLOBAL}.global-5f3b1e0d.global.rds.amazonaws.com",
        **extra,
    }
    if state is not None:
        cluster["FailoverState"] = state
    return {"GlobalClusters": [cluster]}


def db_cluster(arn: str = WEST, status: str = "available") -> dict[str, Any]:
    """DescribeDBClusters' answer for one Aurora cluster."""
    name, region = arn.rsplit(":", 1)[1], arn.split(":")[3]
    return {
        "DBClusters": [
            {
                "DBClusterIdentifier": name,
                "DBClusterArn": arn,
                "Status": status,
                "Engine": "aurora-postgresql",
                "EngineVersion": "16.4",
                "Endpoint": f"{name}.cluster-c1a2b3c4d5e6.{region}.rds.amazonaws.com",
                "ReaderEndpoint": f"{name}.cluster-ro-c1a2b3c4d5e6.{region}.rds.amazonaws.com",
                "Port": 5432,
                "GlobalClusterIdentifier": GLOBAL,
                "MultiAZ": False,
            }
        ]
    }


def state(status: str, to: str = WEST, data_loss: bool = False) -> dict[str, Any]:
    return {
        "Status": status,
        "FromDbClusterArn": EAST if to == WEST else WEST,
        "ToDbClusterArn": to,
        "IsDataLossAllowed": data_loss,
    }


DESCRIBE_GLOBAL = {"GlobalClusterIdentifier": GLOBAL}
DESCRIBE_WEST = {"DBClusterIdentifier": "orders-west"}


def expect_situation(rds: Stubber, writer: str = EAST, **extra: Any) -> None:
    """The describes every start and preflight makes first."""
    rds.add_response("describe_global_clusters", global_cluster(writer, **extra), DESCRIBE_GLOBAL)
    rds.add_response("describe_db_clusters", db_cluster(), DESCRIBE_WEST)


def test_switchover_waits_for_the_new_writer_gives_its_endpoint_and_undo_switches_back():
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(), aws)
        expect_situation(aws.rds)
        aws.rds.add_response(
            "switchover_global_cluster",
            {"GlobalCluster": global_cluster(state=state("switching-over"))["GlobalClusters"][0]},
            {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": WEST},
        )
        handle = action.start(ctx)
        assert handle["previous_primary_arn"] == EAST and handle["target_arn"] == WEST
        point = handle_recovery_point(handle)
        assert point is not None and datetime.now(timezone.utc) - point.created < timedelta(seconds=5)

        aws.rds.add_response(
            "describe_global_clusters", global_cluster(state=state("switching-over")), DESCRIBE_GLOBAL
        )
        assert action.poll(ctx, handle).note == f"{GLOBAL} is switching-over"
        aws.rds.add_response("describe_global_clusters", global_cluster(WEST), DESCRIBE_GLOBAL)
        aws.rds.add_response("describe_db_clusters", db_cluster(), DESCRIBE_WEST)
        done = action.poll(ctx, handle)
        assert (done.done, done.failed, done.note) == (True, None, f"orders-west is the primary of {GLOBAL}")

        aws.rds.add_response("describe_db_clusters", db_cluster(), DESCRIBE_WEST)
        aws.rds.add_response("describe_global_clusters", global_cluster(WEST), DESCRIBE_GLOBAL)
        assert action.result(ctx, handle) == {
            "endpoint": "orders-west.cluster-c1a2b3c4d5e6.us-west-2.rds.amazonaws.com",
            "reader_endpoint": "orders-west.cluster-ro-c1a2b3c4d5e6.us-west-2.rds.amazonaws.com",
            "port": 5432,
            "cluster_arn": WEST,
            "cluster_id": "orders-west",
            "previous_primary_arn": EAST,
            "global_endpoint": f"{GLOBAL}.global-5f3b1e0d.global.rds.amazonaws.com",
        }

        aws.rds.add_response("describe_global_clusters", global_cluster(WEST), DESCRIBE_GLOBAL)
        aws.rds.add_response(
            "switchover_global_cluster",
            {
                "GlobalCluster": global_cluster(WEST, state=state("switching-over", to=EAST))[
                    "GlobalClusters"
                ][0]
            },
            {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": EAST},
        )
        undo = action.undo(ctx, handle)
        aws.rds.add_response("describe_global_clusters", global_cluster(EAST), DESCRIBE_GLOBAL)
        back = action.poll_undo(ctx, handle, undo)
        assert (back.done, back.failed, back.note) == (True, None, f"orders-east is the primary of {GLOBAL}")


def test_failover_allows_data_loss_and_measures_the_rpo_from_the_replication_lag():
    action = registry()[FAIL]
    with Stubbed() as aws:
        ctx = step_context(data(FAIL), aws)
        expect_situation(aws.rds)
        dimensions = [{"Name": "DBClusterIdentifier", "Value": "orders-west"}]
        metric = {
            "Namespace": "AWS/RDS",
            "MetricName": "AuroraGlobalDBReplicationLag",
            "Dimensions": dimensions,
        }
        aws.cloudwatch.add_response("list_metrics", {"Metrics": [metric]}, metric)
        now = datetime.now(timezone.utc)
        aws.cloudwatch.add_response(
            "get_metric_statistics",
            {
                "Label": "AuroraGlobalDBReplicationLag",
                "Datapoints": [
                    {"Timestamp": now - timedelta(minutes=2), "Maximum": 9000.0, "Unit": "Milliseconds"},
                    {"Timestamp": now - timedelta(minutes=1), "Maximum": 1500.0, "Unit": "Milliseconds"},
                ],
            },
            {**metric, "StartTime": ANY, "EndTime": ANY, "Period": 60, "Statistics": ["Maximum"]},
        )
        aws.rds.add_response(
            "failover_global_cluster",
            {
                "GlobalCluster": global_cluster(state=state("failing-over", data_loss=True))[
                    "GlobalClusters"
                ][0]
            },
            {"GlobalClusterIdentifier": GLOBAL, "TargetDbClusterIdentifier": WEST, "AllowDataLoss": True},
        )
        handle = action.start(ctx)
        assert handle["replication_lag_seconds"] == 1.5  # the latest datapoint, not the worst
        point = handle_recovery_point(handle)
        assert point is not None
        lost = datetime.now(timezone.utc) - point.created
        assert timedelta(seconds=1.5) <= lost < timedelta(seconds=5)

        aws.rds.add_response("describe_db_clusters", db_cluster(), DESCRIBE_WEST)
        aws.rds.add_response("describe_global_clusters", global_cluster(WEST), DESCRIBE_GLOBAL)
        assert action.result(ctx, handle)["replication_lag_seconds"] == 1.5
    assert action.undoable is False and registry()[SWITCH].undoable is True


def test_a_failover_without_a_reported_lag_runs_but_does_not_claim_an_rpo():
    action = registry()[FAIL]
    with Stubbed() as aws:
        ctx = step_context(data(FAIL), aws)
        notes: list[str] = []
        ctx.note = notes.append
        expect_situation(aws.rds)
        aws.cloudwatch.add_response("list_metrics", {"Metrics": []})
        aws.rds.add_response(
            "failover_global_cluster",
            {
                "GlobalCluster": global_cluster(state=state("failing-over", data_loss=True))[
                    "GlobalClusters"
                ][0]
            },
        )
        handle = action.start(ctx)
    assert handle["replication_lag_seconds"] is None and handle_recovery_point(handle) is None
    assert notes == ["no replication lag reported for orders-west: the RPO is not measured"]


def test_a_cluster_that_is_not_a_member_is_refused_before_any_change():
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(target_cluster="orders-other"), aws)
        for _ in range(2):
            aws.rds.add_response("describe_global_clusters", global_cluster(), DESCRIBE_GLOBAL)
            aws.rds.add_response(
                "describe_db_clusters",
                db_cluster("arn:aws:rds:us-west-2:123456789012:cluster:orders-other"),
                {"DBClusterIdentifier": "orders-other"},
            )
        [finding] = action.preflight(ctx)
        with pytest.raises(StepFailed) as refused:
            action.start(ctx)
    assert finding.status == "error"
    assert refused.value.reason == (
        "DB cluster arn:aws:rds:us-west-2:123456789012:cluster:orders-other is not a member of Aurora global "
        f"database {GLOBAL} (its members: {EAST}, {WEST})"
    )


def test_a_missing_global_database_and_a_target_in_another_region_are_explained():
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(), aws)
        aws.rds.add_client_error(
            "describe_global_clusters",
            "GlobalClusterNotFoundFault",
            f"Global cluster {GLOBAL} not found",
            404,
        )
        [missing] = action.preflight(ctx)
        ctx = step_context(data(target_cluster=EAST), aws)
        with pytest.raises(StepFailed) as elsewhere:
            action.start(ctx)
    assert (missing.status, missing.message) == ("error", f"Aurora global database {GLOBAL} does not exist")
    assert elsewhere.value.reason == (
        f"DB cluster {EAST} is in us-east-1, but the step runs in us-west-2; give the step "
        '"region": "us-east-1" (the Region that becomes the primary)'
    )


def test_a_primary_other_than_source_cluster_is_not_switched():
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(source_cluster="orders-central"), aws)
        expect_situation(aws.rds)
        with pytest.raises(
            StepFailed, match=f"the primary of Aurora global database {GLOBAL} is {EAST}, not orders-central"
        ):
            action.start(ctx)
        ctx = step_context(data(source_cluster=EAST), aws)
        expect_situation(aws.rds)
        aws.rds.add_response(
            "switchover_global_cluster", {"GlobalCluster": global_cluster()["GlobalClusters"][0]}
        )
        assert action.start(ctx)["previous_primary_arn"] == EAST


def test_a_target_that_is_the_primary_already_is_left_alone_and_nothing_is_undone():
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(), aws)
        expect_situation(aws.rds, writer=WEST)
        [finding] = action.preflight(ctx)
        expect_situation(aws.rds, writer=WEST)
        handle = action.start(ctx)  # no switchover call: the Stubber would fail on one
        assert handle["unchanged"] is True
        assert action.poll_undo(ctx, handle, action.undo(ctx, handle)).note == "nothing was switched"
    assert (finding.status, finding.message) == (
        "warning",
        f"{WEST} is already the primary of {GLOBAL}; nothing to do",
    )


def test_a_start_after_this_runs_own_switch_re_attaches_to_it_and_undo_switches_back():
    """The process died during (or lost the answer of) its switchover call: the journaled memo
    names the primary before the run, so the start again neither calls the switched cluster
    "unchanged" (nothing would be undone) nor refuses the switch in progress as someone else's."""
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(), aws)
        # What the first process journaled: the primary before, and that it made the call.
        ctx.memo = {f"previous primary {GLOBAL}": EAST, f"switch over called {GLOBAL} {WEST}": True}
        expect_situation(aws.rds, writer=WEST)  # AWS already switched
        handle = action.start(ctx)  # no second switchover call: the Stubber would fail on one
        assert "unchanged" not in handle and handle["previous_primary_arn"] == EAST
        expect_situation(aws.rds, writer=EAST, state=state("switching-over"))  # still switching
        handle = action.start(ctx)
        assert "unchanged" not in handle and handle["previous_primary_arn"] == EAST


def test_a_retry_after_finding_someone_elses_switch_never_adopts_it():
    """Attempt 1 found a switchover under way that it did not start and refused; attempt 2 (a
    retry) still finds it: it refuses again, rather than take it for its own (its undo would
    then reverse a change this run did not make)."""
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(), aws)
        for _ in range(2):
            expect_situation(aws.rds, writer=EAST, state=state("switching-over"))
            with pytest.raises(StepFailed, match="switching-over already"):
                action.start(ctx)
        assert ctx.memo == {f"previous primary {GLOBAL}": EAST}  # never "called"
        # A switch this run's undo started back to EAST is not the switch to WEST either.
        ctx.memo = {**ctx.memo, f"switch over called {GLOBAL} {WEST}": True}
        expect_situation(aws.rds, writer=WEST, state=state("switching-over", to=EAST))
        with pytest.raises(StepFailed, match="already"):
            action.start(ctx)


def test_refusals_and_a_switch_that_never_happens_fail_the_step():
    action = registry()[SWITCH]
    with Stubbed() as aws:
        ctx = step_context(data(), aws)
        expect_situation(aws.rds)
        aws.rds.add_client_error(
            "switchover_global_cluster",
            "InvalidGlobalClusterStateFault",
            "The engine versions of the global cluster members do not match",
            400,
        )
        with pytest.raises(StepFailed) as refused:
            action.start(ctx)
        assert refused.value.reason == (
            f"RDS refused to switch over {GLOBAL} to {WEST} now: The engine versions of the global cluster "
            "members do not match"
        )
        long_ago = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
        handle = {"global_cluster": GLOBAL, "target_arn": WEST, "target": "orders-west", "started": long_ago}
        aws.rds.add_response("describe_global_clusters", global_cluster(EAST), DESCRIBE_GLOBAL)
        failed = action.poll(ctx, handle)
        recent = {**handle, "started": datetime.now(timezone.utc).isoformat()}
        aws.rds.add_response("describe_global_clusters", global_cluster(EAST), DESCRIBE_GLOBAL)
        waiting = action.poll(ctx, recent)
    assert (
        failed.failed
        == f"Aurora global database {GLOBAL} is not being switched, and its primary is {EAST}, not {WEST}"
    )
    assert (waiting.done, waiting.note) == (False, f"waiting for {GLOBAL} to report the switch over")


def test_preflight_says_what_would_happen_and_warns_about_a_switch_in_progress():
    action = registry()[FAIL]
    with Stubbed() as aws:
        ctx = step_context(data(FAIL), aws)
        expect_situation(aws.rds)
        aws.cloudwatch.add_response("list_metrics", {"Metrics": []})
        ok, lag = action.preflight(ctx)
        expect_situation(aws.rds, state=state("failing-over"))
        [busy] = action.preflight(ctx)
    assert (ok.status, ok.message) == ("ok", f"would fail over {GLOBAL} from orders-east to orders-west")
    assert lag.status == "warning" and "no replication lag reported" in lag.message
    assert (busy.status, busy.message) == (
        "warning",
        f"Aurora global database {GLOBAL} is failing-over already",
    )


# --- drills and validation ----------------------------------------------------------------------


@pytest.mark.parametrize("uses", [SWITCH, FAIL])
def test_skipped_in_drills_unless_drill_with_names_a_drill_global_database(uses: str):
    drill = prepare(build_plan(data(uses)), "drill", registry(), run_id="t35t1d")
    assert "svc.s" in drill.skipped
    redirect = {"global_cluster": "orders-drill-global", "target_cluster": "orders-drill-west"}
    plan = one_step(uses, params(), region="us-west-2", drill_with=redirect)
    redirected = prepare(build_plan(plan), "drill", registry(), run_id="t35t1d")
    assert dict(redirected.steps["svc.s"].params) == redirect


def validate(plan: dict[str, Any]) -> list[Any]:
    return validate_document(read_document("p.json", data=json.dumps(plan).encode())).diagnostics


def test_a_drill_with_that_keeps_the_production_global_database_is_refused():
    def plan(**drill_with: Any) -> dict[str, Any]:
        step = {"id": "db", "uses": SWITCH, "with": params(), "region": "us-west-2", "estimate": "PT5M"}
        step["drill_with"] = drill_with
        return plan_data(
            {
                "db": {
                    "steps": [
                        step,
                        {
                            "id": "up",
                            "uses": "check.tcp",
                            "with": {"host": "${db.db.endpoint}", "port": 5432},
                        },
                    ]
                }
            }
        )

    [finding] = [d for d in validate(plan(target_cluster="orders-drill-west")) if d.code == "DR211"]
    assert finding.pointer == "/services/db/steps/0/drill_with"
    assert finding.message == (
        f"step `db` of service `db`: in drills, `global_cluster` is `{GLOBAL}` as in a real recovery, so a drill "
        "would switch production; give `drill_with.global_cluster` a drill-only one (or remove `drill_with`: "
        "drills then skip the step)"
    )
    [same] = [d for d in validate(plan(global_cluster=GLOBAL)) if d.code == "DR211"]
    assert same.pointer == "/services/db/steps/0/drill_with/global_cluster"
    assert not [
        d for d in validate(plan(global_cluster="orders-drill-global")) if d.severity.value == "error"
    ]


def test_the_parameters_are_checked_by_the_schema():
    def errors(**step: Any) -> list[str]:
        body = {"id": "flip", "uses": SWITCH, "with": step, "estimate": "PT5M"}
        return [
            d.message for d in validate(plan_data({"db": {"steps": [body]}})) if d.severity.value == "error"
        ]

    assert errors(**params()) == []
    assert errors(**params(target_cluster=WEST, source_cluster=EAST)) == []
    assert errors(**params(target_cluster="${db.other.cluster_arn}")) != []  # DR204: no such step
    assert errors(**params(target_cluster="arn:aws:rds:us-west-2:1234:cluster:x")) == [
        "step `flip` of service `db`: `with.target_cluster` must be a DB cluster identifier such as orders-west, "
        "or a DB cluster ARN"
    ]
    assert errors(global_cluster=GLOBAL) == ["step `flip` of service `db`: `with.target_cluster` is required"]


# --- end to end: moto behind the sandbox's emulation of the two calls ------------------------------


@contextlib.contextmanager
def emulated_aws() -> Iterator[str]:
    """moto's server with :class:`GlobalClusterEmulator` in front, on a loopback port (as the sandbox
    serves them): the endpoint URL."""
    from moto.server import DomainDispatcherApplication, create_backend_app  # type: ignore[attr-defined]
    from werkzeug.serving import make_server

    from drplan.sandbox.global_emulator import GlobalClusterEmulator

    moto_app = DomainDispatcherApplication(create_backend_app)
    emulator = GlobalClusterEmulator(switch_seconds=0.05)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if emulator.handles(environ):
            return emulator(environ, start_response)
        return moto_app(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    try:
        import urllib.request

        urllib.request.urlopen(
            urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10
        )
        yield endpoint
    finally:
        server.shutdown()


def session(endpoint: str) -> AwsSession:
    return AwsSession(region="us-east-1", endpoint_url=endpoint, credentials=("sandbox", "sandbox"))


def seed_for(plan: dict[str, Any], aws: AwsSession) -> None:
    from drplan.sandbox.global_emulator import seed_global_cluster
    from drplan.sandbox.seeders import SeedContext

    prepared = prepare(build_plan(plan), "recover", registry(), run_id="seed")
    step = prepared.steps["svc.s"]
    seed_global_cluster(SeedContext.of(Runner(prepared, aws, EventBus("seed")).context(step, step.params)))


def writer(aws: AwsSession) -> str:
    from drplan.actions.rds.global_cluster import writer_arn

    answer = aws.client("rds", region="us-west-2").describe_global_clusters(GlobalClusterIdentifier=GLOBAL)
    [found] = [c for c in answer["GlobalClusters"] if c["GlobalClusterIdentifier"] == GLOBAL]
    return str(writer_arn(found))


@pytest.mark.parametrize("uses", [SWITCH, FAIL])
def test_end_to_end_against_the_emulated_global_database(uses: str):
    plan = one_step(uses, params(source_cluster=EAST), region="us-west-2")
    with emulated_aws() as endpoint:
        aws = session(endpoint)
        other = {"global_cluster": "aa-other-global", "target_cluster": "aa-other-west"}
        seed_for(one_step(uses, other, region="us-west-2"), aws)  # moto lists every global cluster
        seed_for(plan, aws)
        seed_for(plan, aws)  # seeding is idempotent
        assert writer(aws) == EAST
        run = run_plan(plan, aws=aws)
        record = run.record()
        assert record.status == "succeeded", record.error
        assert writer(aws) == WEST
        assert record.outputs["cluster_arn"] == WEST and record.outputs["previous_primary_arn"] == EAST
        assert record.outputs["endpoint"].startswith("orders-west.cluster-")
        assert record.outputs["endpoint"].endswith(".us-west-2.rds.amazonaws.com")
        if uses == FAIL:
            assert record.outputs["replication_lag_seconds"] == 0.85  # what the seeder put in CloudWatch
        undone = run.runner.undo(["svc.s"], reason="test")
        assert writer(aws) == (EAST if uses == SWITCH else WEST), undone
        with pytest.raises(Exception, match="GlobalClusterNotFoundFault"):
            aws.client("rds", region="us-west-2").switchover_global_cluster(
                GlobalClusterIdentifier="nope", TargetDbClusterIdentifier=WEST
            )
