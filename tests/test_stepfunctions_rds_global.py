"""aws.rds.promote_read_replica, aws.rds.switchover_global_cluster and
aws.rds.failover_global_cluster exported to Step Functions and executed by moto's interpreter,
against the same emulated AWS as drplan's own run: the same statuses, outputs and AWS state
afterwards, the same failures with the same messages, and a drill whose cleanup switches back.

moto 5.2 has no Aurora global switchover or failover: both runs get them from drplan's sandbox
emulator (tests/moto_emulated.py), which makes the switch on moto's own global cluster. moto
names a DB cluster's and a global cluster's endpoints with a random part: outputs compare without
it. RDS errors are named as Step Functions names them (tests/test_stepfunctions_rds.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.sandbox.global_emulator import GlobalClusterEmulator
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
from tests.moto_emulated import ToEmulator, emulated_session, moto_interpreter_through
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.moto_timestamps import moto_passes_timestamps_as_text
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    _called,
    _grants,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    records,
    statuses,
)
from tests.test_stepfunctions_rds import _rds_errors_named_as_step_functions

PROMOTE = "aws.rds.promote_read_replica"
SWITCH = "aws.rds.switchover_global_cluster"
FAILOVER = "aws.rds.failover_global_cluster"
ACCOUNT = "123456789012"
PRIMARY_REGION = "us-west-2"  # the primary runs elsewhere; the step's Region (REGION) takes over
GLOBAL, PRIMARY, SECONDARY = "orders-global", "orders-west", "orders-east"
DRILL_GLOBAL, DRILL_PRIMARY, DRILL_SECONDARY = "drill-global", "drill-west", "drill-east"
LOGIN = {"MasterUsername": "admin1", "MasterUserPassword": "password123"}
ROOT = Path(__file__).resolve().parent.parent


def arn(cluster: str, region: str = REGION) -> str:
    return f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{cluster}"


# --- the emulated AWS -------------------------------------------------------------------------------


@contextlib.contextmanager
def emulated(sfn: bool = False) -> Iterator[GlobalClusterEmulator]:
    """moto (with its Step Functions interpreter when ``sfn``) and the global switch emulator, which
    drplan's run and the interpreter both reach."""
    from moto.rds.models import RDSBackend

    from drplan.sandbox import emulator_fixes

    patch = pytest.MonkeyPatch()
    # moto's PromoteReadReplica leaves the instance naming its source: the sandbox's fix, for now.
    patch.setattr(RDSBackend, "promote_read_replica", RDSBackend.promote_read_replica)
    emulator_fixes.fix_promote_read_replica()
    with mock_aws(config=SFN if sfn else None):
        emulator = GlobalClusterEmulator(switch_seconds=0.3)
        with (
            moto_interpreter_through(emulator, "rds"),
            _rds_errors_named_as_step_functions(),
            moto_passes_timestamps_as_text(),
            moto_evaluates_jsonata(),
        ):
            try:
                yield emulator
            finally:
                patch.undo()


def seed_global(
    name: str = GLOBAL, primary: str = PRIMARY, secondary: str = SECONDARY, lag: bool = True
) -> None:
    """The global database ``name``: ``primary`` (the writer) in us-west-2, ``secondary`` in the
    step's Region, with a replication lag of 850 ms in CloudWatch (``lag``)."""
    east = boto3.client("rds", region_name=REGION)
    if name not in [g["GlobalClusterIdentifier"] for g in east.describe_global_clusters()["GlobalClusters"]]:
        east.create_global_cluster(
            GlobalClusterIdentifier=name, Engine="aurora-postgresql", EngineVersion="16.4"
        )
    boto3.client("rds", region_name=PRIMARY_REGION).create_db_cluster(
        DBClusterIdentifier=primary,
        Engine="aurora-postgresql",
        EngineVersion="16.4",
        GlobalClusterIdentifier=name,
        **LOGIN,
    )
    east.create_db_cluster(
        DBClusterIdentifier=secondary,
        Engine="aurora-postgresql",
        EngineVersion="16.4",
        GlobalClusterIdentifier=name,
    )
    if lag:
        boto3.client("cloudwatch", region_name=REGION).put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": "AuroraGlobalDBReplicationLag",
                    "Dimensions": [{"Name": "DBClusterIdentifier", "Value": secondary}],
                    "Timestamp": dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1),
                    "Value": 850.0,
                    "Unit": "Milliseconds",
                }
            ],
        )


def seed_replica() -> None:
    """``ledger`` (postgres) and its read replica ``ledger-replica``; ``lone``, a standalone instance."""
    rds = boto3.client("rds", region_name=REGION)
    for name in ("ledger", "lone"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            **LOGIN,
        )
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="ledger-replica", SourceDBInstanceIdentifier="ledger"
    )


def aws_state() -> dict[str, Any]:
    """Global databases (their writer, members, a switch in progress) and DB instances (replicating
    from, status, backups kept)."""
    rds = boto3.client("rds", region_name=REGION)
    globals_ = {
        g["GlobalClusterIdentifier"]: {
            "members": sorted((m["DBClusterArn"], m["IsWriter"]) for m in g.get("GlobalClusterMembers", [])),
            "switching": g.get("FailoverState"),
        }
        for g in rds.describe_global_clusters()["GlobalClusters"]
    }
    instances = {
        db["DBInstanceIdentifier"]: {
            "source": db.get("ReadReplicaSourceDBInstanceIdentifier"),
            "status": db["DBInstanceStatus"],
            "retention": db.get("BackupRetentionPeriod"),
        }
        for db in rds.describe_db_instances()["DBInstances"]
    }
    return {"globals": globals_, "instances": instances}


def settled() -> None:
    """Wait until no emulated switch is in progress (the emulator finishes it on a timer)."""
    rds = boto3.client("rds", region_name=REGION)
    for _ in range(50):
        if not any(g.get("FailoverState") for g in rds.describe_global_clusters()["GlobalClusters"]):
            return
        time.sleep(0.1)


def unrandom(value: Any) -> Any:
    """Outputs without moto's random parts of endpoints."""
    text = json.dumps(value, sort_keys=True)
    text = re.sub(r"\.cluster-(ro-)?[a-z0-9]+\.", r".cluster-\1X.", text)
    return json.loads(re.sub(r"\.global-[0-9a-f]+\.", ".global-X.", text))


# --- plans (docs/actions.md) -------------------------------------------------------------------------


def promote_plan(**params: Any) -> dict[str, Any]:
    with_ = {"instance": "ledger-replica", **params}
    return plan_data(
        {"ledger": {"steps": [{"id": "promote", "uses": PROMOTE, "with": with_, "estimate": "PT1M"}]}}
    )


def switch_plan(uses: str = SWITCH, drill: bool = False, **params: Any) -> dict[str, Any]:
    with_ = {"global_cluster": GLOBAL, "target_cluster": SECONDARY, **params}
    step: dict[str, Any] = {"id": "switch", "uses": uses, "with": with_, "estimate": "PT1M"}
    if drill:
        step["drill_with"] = {
            "global_cluster": DRILL_GLOBAL,
            "target_cluster": DRILL_SECONDARY,
            "source_cluster": arn(DRILL_PRIMARY, PRIMARY_REGION),
        }
    return plan_data({"db": {"steps": [step]}})


# --- comparing the two runs --------------------------------------------------------------------------


def both(
    data: dict[str, Any], seed: Any, mode: str = "recover", rollback: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The local run and the execution of the exported machine, each against freshly seeded AWS:
    (statuses, outputs, errors, AWS state afterwards) of each; a drill cleaned up, a failed
    recovery rolled back (``rollback``) as ``drplan drill`` and ``drplan recover`` do after the steps."""
    with emulated() as emulator:
        seed()
        local = run_plan(data, mode, run_id=RUN_ID, aws=emulated_session(emulator, "rds"))  # type: ignore[arg-type]
        if mode == "drill":
            assert local.runner.cleanup() == []
        if rollback:
            assert local.runner.rollback() == []
        settled()
        expected = {
            "statuses": {k: r.status for k, r in local.outcome.records.items()},
            "outputs": {
                k: unrandom(r.outputs) for k, r in local.outcome.records.items() if r.status == "succeeded"
            },
            "errors": {k: str(r.error) for k, r in local.outcome.records.items() if r.error},
            "aws": aws_state(),
        }
    exported = export_plan(
        build_plan(data),
        mode,  # type: ignore[arg-type]
        options=FAST,
        history_budget=ONE_MACHINE,
        rollback_on_failure=rollback,
    )
    assert lint_definition(exported.definition) == []
    with emulated(sfn=True):
        seed()
        described = execute(exported.definition, table=exported.coordination_table, timeout=120)
        settled()
        doc = records(described)
        got = {
            "statuses": statuses(doc, exported.sids),
            "outputs": {
                k: unrandom(doc["steps"][sid]["out"])
                for k, sid in exported.sids.items()
                if doc["steps"].get(sid, {}).get("status") == "succeeded"
            },
            "errors": {
                k: doc["steps"][sid]["cause"]
                for k, sid in exported.sids.items()
                if doc["steps"].get(sid, {}).get("status") == "failed"
            },
            "aws": aws_state(),
        }
    return expected, got


# --- export -------------------------------------------------------------------------------------------


def test_every_variant_exports_lints_and_the_role_may_call_what_it_calls() -> None:
    plans = [
        (
            promote_plan(source_instance="ledger", backup_retention_days=3, backup_window="03:00-03:30"),
            PROMOTE,
        ),
        (promote_plan(source_instance=f"arn:aws:rds:us-west-2:{ACCOUNT}:db:ledger"), PROMOTE),
        (switch_plan(SWITCH, source_cluster=arn(PRIMARY, PRIMARY_REGION)), SWITCH),
        (switch_plan(SWITCH, target_cluster=arn(SECONDARY), source_cluster=PRIMARY), SWITCH),
        (switch_plan(FAILOVER, source_cluster=PRIMARY), FAILOVER),
    ]
    for data, uses in plans:
        for mode in ("recover", "drill"):
            if mode == "drill":
                step = data["services"][next(iter(data["services"]))]["steps"][0]
                step["drill_with"] = (
                    {"instance": "drill-replica"}
                    if uses == PROMOTE
                    else {"global_cluster": DRILL_GLOBAL, "target_cluster": DRILL_SECONDARY}
                )
            exported = export_plan(build_plan(data), mode)  # type: ignore[arg-type]
            assert lint_definition(exported.definition) == [], (uses, mode)
            called = _called(exported.definition)
            assert {f"rds:{uses.split('.')[-1].replace('_', ' ').title().replace(' ', '')}"} <= called
            for document in (
                exported.policy,
                exported.template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"],
            ):
                granted = {a for s in document["Statement"] for a in s["Action"]}
                assert not {c for c in called if not any(_grants(a, c) for a in granted)}, (
                    uses,
                    mode,
                    called,
                )


def test_in_a_drill_without_drill_with_the_steps_are_skipped_as_locally() -> None:
    for data in (promote_plan(), switch_plan(SWITCH), switch_plan(FAILOVER)):
        exported = export_plan(build_plan(data), "drill")
        assert any("does not run in a drill" in note for note in exported.notes), exported.notes
        assert not {c for c in _called(exported.definition) if c.startswith("rds:")}


def test_references_and_retries_are_refused_with_the_reason() -> None:
    ref = {
        "svc": {
            "steps": [
                {"id": "find", "uses": "aws.lambda.invoke", "with": {"function": "f", "outputs": ["x"]}}
            ]
        }
    }
    for uses, param in ((PROMOTE, "instance"), (SWITCH, "target_cluster"), (FAILOVER, "global_cluster")):
        data = promote_plan() if uses == PROMOTE else switch_plan(uses)
        service = next(iter(data["services"]))
        data["services"][service]["steps"][0]["with"][param] = "${svc.find.x}"
        data["services"][service]["depends_on"] = ["svc"]
        data["services"].update(ref)
        with pytest.raises(
            ExportRefused, match=re.escape(f"`{param}` must be known when the plan is exported")
        ):
            export_plan(build_plan(data), "recover")
    for uses in (SWITCH, FAILOVER):
        data = switch_plan(uses)
        data["services"]["db"]["steps"][0]["retries"] = 1
        with pytest.raises(ExportRefused, match="re-attaches"):
            export_plan(build_plan(data), "recover")


def test_the_failover_plan_exports_with_its_switchover() -> None:
    """plans/failover.json: its global database switchover is translated in both modes."""
    data = json.loads((ROOT / "plans" / "failover.json").read_text())
    for mode in ("recover", "drill"):
        exported = export_plan(build_plan(data), mode)
        assert lint_definition(exported.definition) == []
        assert "rds:SwitchoverGlobalCluster" in _called(exported.definition), mode


# --- promote_read_replica ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_promotion_matches_the_local_promotion() -> None:
    expected, got = both(promote_plan(source_instance="LEDGER", backup_retention_days=3), seed_replica)
    assert expected["statuses"] == {"ledger.promote": "succeeded"}, expected["errors"]
    assert expected["aws"]["instances"]["ledger-replica"] == {
        "source": None,
        "status": "available",
        "retention": 3,
    }
    assert expected["outputs"]["ledger.promote"]["instance_id"] == "ledger-replica"
    assert got == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"instance": "nothing"}, "DB instance nothing does not exist"),
        ({"instance": "lone"}, "DB instance lone is not a read replica (promoted already, or a primary)"),
        ({"source_instance": "other"}, "is a replica of ledger, not of other; not promoting it"),
        (
            {"source_instance": f"arn:aws:rds:us-west-2:{ACCOUNT}:db:other"},
            f"is a replica of ledger, not of arn:aws:rds:us-west-2:{ACCOUNT}:db:other;",
        ),
    ],
)
def test_a_promotion_refused_fails_with_the_local_message(params: dict[str, Any], message: str) -> None:
    expected, got = both(promote_plan(**params), seed_replica)
    assert expected["statuses"] == {"ledger.promote": "failed"}
    assert message in expected["errors"]["ledger.promote"]
    assert got == expected


# --- switchover and failover ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("uses", [SWITCH, FAILOVER])
def test_a_switch_matches_the_local_switch(uses: str) -> None:
    data = switch_plan(uses, target_cluster=arn(SECONDARY), source_cluster=PRIMARY.upper())
    expected, got = both(data, seed_global)
    assert expected["statuses"] == {"db.switch": "succeeded"}, expected["errors"]
    out = expected["outputs"]["db.switch"]
    assert out["cluster_arn"] == arn(SECONDARY) and out["previous_primary_arn"] == arn(
        PRIMARY, PRIMARY_REGION
    )
    if uses == FAILOVER:
        assert out["replication_lag_seconds"] == 0.85
    assert (arn(SECONDARY), True) in expected["aws"]["globals"][GLOBAL]["members"]
    assert got == expected


@pytest.mark.slow
def test_a_failover_without_a_reported_lag_has_none() -> None:
    expected, got = both(switch_plan(FAILOVER), lambda: seed_global(lag=False))
    assert expected["outputs"]["db.switch"]["replication_lag_seconds"] is None
    assert got == expected


@pytest.mark.slow
def test_a_target_that_is_the_primary_already_is_left_alone() -> None:
    # Switched before the run through an emulator of its own (moto has no switchover).
    calls: list[Any] = []

    def seed_switched() -> None:
        seed_global()
        rds = boto3.client("rds", region_name=REGION)
        ToEmulator(GlobalClusterEmulator(switch_seconds=0.0), "rds").register(rds)
        rds.switchover_global_cluster(
            GlobalClusterIdentifier=GLOBAL, TargetDbClusterIdentifier=arn(SECONDARY)
        )
        settled()
        calls.append(1)

    expected, got = both(switch_plan(SWITCH), seed_switched)
    assert calls == [1, 1]
    assert expected["statuses"] == {"db.switch": "succeeded"}, expected["errors"]
    assert expected["outputs"]["db.switch"]["previous_primary_arn"] == arn(SECONDARY)
    assert got == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    ("uses", "params", "message"),
    [
        (SWITCH, {"global_cluster": "nothing"}, "Aurora global database nothing does not exist"),
        (FAILOVER, {"target_cluster": "missing"}, "DB cluster missing does not exist in us-east-1"),
        (
            SWITCH,
            {"target_cluster": "loner"},
            "is not a member of Aurora global database orders-global (its members: ",
        ),
        (
            FAILOVER,
            {"source_cluster": "someone-else"},
            f"is {arn(PRIMARY, PRIMARY_REGION)}, not someone-else; not going",
        ),
        (
            SWITCH,
            {"target_cluster": arn(SECONDARY, "eu-west-1")},
            'is in eu-west-1, but the step runs in us-east-1; give the step "region": "eu-west-1"',
        ),
    ],
)
def test_a_switch_refused_fails_with_the_local_message(
    uses: str, params: dict[str, Any], message: str
) -> None:
    def seed() -> None:
        seed_global()
        boto3.client("rds", region_name=REGION).create_db_cluster(
            DBClusterIdentifier="loner", Engine="aurora-postgresql", EngineVersion="16.4", **LOGIN
        )

    expected, got = both(switch_plan(uses, **params), seed)
    assert expected["statuses"] == {"db.switch": "failed"}
    assert message in expected["errors"]["db.switch"], expected["errors"]
    assert got == expected


@pytest.mark.slow
def test_a_promotion_named_by_the_arn_of_its_source_runs_as_locally() -> None:
    source = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:Ledger"
    expected, got = both(promote_plan(source_instance=source, backup_window="03:00-03:30"), seed_replica)
    assert expected["statuses"] == {"ledger.promote": "succeeded"}, expected["errors"]
    assert got == expected


@pytest.mark.slow
def test_a_rollback_switches_back_as_the_local_rollback_does() -> None:
    """A recovery that fails after the switchover, rolled back: the primary from before is the
    primary again."""
    data = switch_plan(SWITCH, source_cluster=arn(PRIMARY, PRIMARY_REGION))
    data["services"]["after"] = {
        "depends_on": ["db"],
        "steps": [{"id": "promote", "uses": PROMOTE, "with": {"instance": "nothing"}}],
    }
    expected, got = both(data, seed_global, rollback=True)
    assert expected["statuses"] == {"db.switch": "succeeded", "after.promote": "failed"}
    assert (arn(PRIMARY, PRIMARY_REGION), True) in expected["aws"]["globals"][GLOBAL]["members"]
    assert got == expected


@pytest.mark.slow
def test_a_drill_switches_the_drill_global_database_and_its_cleanup_switches_back() -> None:
    def seed() -> None:
        seed_global()
        seed_global(DRILL_GLOBAL, DRILL_PRIMARY, DRILL_SECONDARY)

    expected, got = both(switch_plan(SWITCH, drill=True), seed, mode="drill")
    assert expected["statuses"] == {"db.switch": "succeeded"}, expected["errors"]
    assert expected["outputs"]["db.switch"]["cluster_arn"] == arn(DRILL_SECONDARY)
    # The cleanup put the drill global database's primary back; production was never touched.
    for name, primary in ((GLOBAL, PRIMARY), (DRILL_GLOBAL, DRILL_PRIMARY)):
        assert (arn(primary, PRIMARY_REGION), True) in expected["aws"]["globals"][name]["members"]
    assert got == expected
