"""aws.rds.restore_point_in_time and aws.rds.restore_cluster_snapshot exported to Step Functions
and executed by moto's interpreter: the same DB instances and clusters afterwards as drplan's own
run (with their tags), the same outputs, the same failures with the same messages, and undos that
leave nothing behind.

The plans are written from docs/actions.md. Where moto falls short, the tests (never the product)
make up for it, and say so:

- moto stamps snapshots with the clock, to the microsecond; Step Functions passes timestamps as
  text (tests/moto_timestamps.py, to the second), so the snapshots' times are set back in moto's
  backend by hours: "the newest" and ``max_age`` are then decided as in AWS;
- moto's automated backups report no restorable window (``RestoreWindow``) and no
  ``DbiResourceId``: one test gives them both, for the local run and the execution alike, to see
  a moment before the window's start refused with the local message;
- moto names a cluster's endpoints with a random part: outputs and state compare without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.export import ExportRefused
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

PITR = "aws.rds.restore_point_in_time"
CLUSTER = "aws.rds.restore_cluster_snapshot"
LOGIN = {"MasterUsername": "admin1", "MasterUserPassword": "password123"}


@pytest.fixture(autouse=True)
def _as_step_functions() -> Iterator[None]:
    """Timestamps as Step Functions passes them (tests/moto_timestamps.py), and JSONata evaluated
    (tests/moto_jsonata.py): the restorable window, the instances' verdict and the cluster's
    outputs are JSONata states."""
    with moto_passes_timestamps_as_text(), moto_evaluates_jsonata():
        yield


# --- AWS: seeding and what it holds ---------------------------------------------------------------


def _naive_ago(hours: float) -> dt.datetime:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)).replace(tzinfo=None)


def seed(*, aurora: bool = False, hours: float = 1) -> None:
    """``orders`` (postgres, automated backups kept 7 days) and ``nobackup`` (none kept); with
    ``aurora``, the Aurora cluster ``warehouse`` with its instance ``warehouse-a`` and the Multi-AZ
    DB cluster ``ledger``, and their snapshots: the manual ones (``wh-nightly``, ``ledger-nightly``),
    ``hours`` old, and the automated ones moto takes, a day older."""
    rds = boto3.client("rds", region_name=REGION)
    for name, engine, days in (("orders", "postgres", 7), ("nobackup", "mysql", 0)):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine=engine,
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            BackupRetentionPeriod=days,
            **LOGIN,
        )
    if aurora:
        rds.create_db_cluster(DBClusterIdentifier="warehouse", Engine="aurora-postgresql", Port=5432, **LOGIN)
        rds.create_db_instance(
            DBInstanceIdentifier="warehouse-a",
            DBClusterIdentifier="warehouse",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )
        rds.create_db_cluster_snapshot(
            DBClusterIdentifier="warehouse", DBClusterSnapshotIdentifier="wh-nightly"
        )
        # A Multi-AZ DB cluster (engine postgres), which brings its own instances.
        rds.create_db_cluster(
            DBClusterIdentifier="ledger",
            Engine="postgres",
            DBClusterInstanceClass="db.m6gd.large",
            AllocatedStorage=100,
            StorageType="io1",
            Iops=1000,
            **LOGIN,
        )
        rds.create_db_cluster_snapshot(
            DBClusterIdentifier="ledger", DBClusterSnapshotIdentifier="ledger-nightly"
        )
        from moto.rds.models import rds_backends

        for snapshot in rds_backends[DEFAULT_ACCOUNT_ID][REGION].cluster_snapshots.values():
            snapshot.created = _naive_ago(hours if snapshot.snapshot_type == "manual" else hours + 24)


def _tags(resource: Mapping[str, Any]) -> dict[str, str]:
    tags = {t["Key"]: t["Value"] for t in resource.get("TagList", [])}
    tags.pop("drplan:created", None)  # the run's start: differs between any two runs
    return tags


def _no_random(text: Any) -> Any:
    """A cluster endpoint without the part moto draws at random."""
    return re.sub(r"\.cluster-(ro-)?[a-z0-9]+\.", r".cluster-\1ID.", text) if isinstance(text, str) else text


def rds_state() -> dict[str, Any]:
    """Every DB instance and cluster, with what a restore decides (class, cluster, writer, engine,
    port, subnet group, tags), without what differs between two runs."""
    rds = boto3.client("rds", region_name=REGION)
    instances = {
        db["DBInstanceIdentifier"]: {
            "status": db["DBInstanceStatus"],
            "class": db["DBInstanceClass"],
            "engine": db["Engine"],
            "cluster": db.get("DBClusterIdentifier"),
            "endpoint": db.get("Endpoint", {}).get("Address"),
            "port": db.get("Endpoint", {}).get("Port"),
            "tags": _tags(db),
        }
        for db in rds.describe_db_instances()["DBInstances"]
    }
    clusters = {
        c["DBClusterIdentifier"]: {
            "status": c["Status"],
            "engine": c["Engine"],
            "version": c.get("EngineVersion"),
            "port": c.get("Port"),
            "endpoint": _no_random(c.get("Endpoint")),
            "members": sorted(
                (m["DBInstanceIdentifier"], m["IsClusterWriter"]) for m in c.get("DBClusterMembers", [])
            ),
            "tags": _tags(c),
        }
        for c in rds.describe_db_clusters()["DBClusters"]
    }
    return {"instances": instances, "clusters": clusters}


def _created_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _no_random(v) for k, v in outputs.items()}


# --- plans (docs/actions.md) -----------------------------------------------------------------------


def pitr_step(step: str = "restore", **params: Any) -> dict[str, Any]:
    return {
        "id": step,
        "uses": PITR,
        "with": {"source_instance": "orders", "target": "orders-pitr", **params},
        "estimate": "PT5M",
    }


def cluster_step(step: str = "restore", **params: Any) -> dict[str, Any]:
    return {
        "id": step,
        "uses": CLUSTER,
        "with": {
            "source_cluster": "warehouse",
            "target": "wh-restored",
            "instance_class": "db.r6g.xlarge",
            **params,
        },
        "estimate": "PT10M",
    }


def _moment(hours: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pitr_plan(moment: str) -> dict[str, Any]:
    """The latest restorable time (with a class and tags), an explicit moment (with a port), and a
    restore from the instance the first step restored (its output)."""
    return plan_data(
        {
            "orders-db": {"steps": [pitr_step(instance_class="db.t3.small", tags={"team": "orders"})]},
            "orders-then": {"steps": [pitr_step(target="orders-then", restore_time=moment, port=5433)]},
            "orders-copy": {
                "depends_on": ["orders-db"],
                "steps": [
                    pitr_step(source_instance="${orders-db.restore.instance_id}", target="orders-copy")
                ],
            },
        },
        name="pitr",
    )


# --- export ----------------------------------------------------------------------------------------


def test_every_variant_exports_lints_and_the_role_may_call_it() -> None:
    variants = [
        pitr_plan("2026-01-01T08:00:00Z"),
        plan_data(
            {
                "db": {
                    "steps": [
                        pitr_step(
                            restore_time="2026-01-01T10:00:00.250+02:00",
                            subnet_group="private",
                            security_groups=["sg-0123456789abcdef0"],
                            multi_az=True,
                            parameter_group="pg",
                        )
                    ]
                }
            }
        ),
        plan_data({"wh": {"steps": [cluster_step(instances=2, max_age="PT6H", tags={"team": "data"})]}}),
        plan_data(
            {
                "wh": {
                    "steps": [
                        cluster_step(
                            snapshot="wh-nightly",
                            engine="aurora-postgresql",
                            port=5433,
                            subnet_group="private",
                            parameter_group="cpg",
                            security_groups=["sg-0123456789abcdef0"],
                        )
                    ]
                }
            }
        ),
        plan_data(
            {
                "wh": {
                    "steps": [
                        cluster_step(snapshot="rds:ledger-2026-01-01", engine="postgres", target="ledger")
                    ]
                }
            }
        ),
    ]
    for data in variants:
        for mode in ("recover", "drill"):
            exported = export_plan(build_plan(data), mode)
            assert lint_definition(exported.definition) == [], (data["services"], mode)
            role = exported.template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
            called = _called(exported.definition)
            assert called, "no aws-sdk call found"
            for document in (exported.policy, role):
                actions = {a for s in document["Statement"] for a in s["Action"]}
                assert not {c for c in called if not any(_grants(a, c) for a in actions)}, (mode, called)


def test_what_has_no_exact_translation_is_refused() -> None:
    refused = {
        "ARN": cluster_step(snapshot="arn:aws:rds:us-east-1:123456789012:cluster-snapshot:wh"),
        "a reference for instances": cluster_step(instances="${a.b.c}"),
        "a reference for target": cluster_step(target="${a.b.c}"),
        "a reference for source": cluster_step(source_cluster="${a.b.c}"),
        "a finer time": pitr_step(restore_time="2026-01-01T08:00:00.123456Z"),
        "a reference for port": pitr_step(port="${a.b.c}"),
    }
    for why, step in refused.items():
        data = plan_data(
            {
                "a": {"steps": [{"id": "b", "uses": "wait", "with": {"duration": "PT1S"}}]},
                "x": {"steps": [step]},
            }
        )
        with pytest.raises(ExportRefused, match=r"x\.restore"):
            export_plan(build_plan(data), "recover")
        assert why


def test_the_instances_are_named_at_export_as_the_local_action_names_them() -> None:
    """The CreateDBInstance calls are unrolled with the local action's names (``suffixed``: the
    target shortened to fit 63 characters, never the ``-N``); a drill's carry the run id."""
    data = plan_data({"wh": {"steps": [cluster_step(instances=3, target="w" * 62)]}})

    def created(mode: str) -> list[Any]:
        definition = export_plan(build_plan(data), mode).definition
        found: list[Any] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if str(node.get("Resource", "")).endswith(":createDBInstance"):
                    parameters = node["Parameters"]
                    found.append(
                        parameters.get("DbInstanceIdentifier", parameters.get("DbInstanceIdentifier.$"))
                    )
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(definition)
        return sorted(found)

    assert created("recover") == [f"{'w' * 61}-{i}" for i in (1, 2, 3)]
    drill = f"{'w' * 46}-drill-{{}}"  # 63, less the "-N" reserved, "-drill-" and the run id
    assert created("drill") == [f"States.Format('{drill}-{i}', $.run.id)" for i in (1, 2, 3)]


# --- aws.rds.restore_point_in_time: executed --------------------------------------------------------


@pytest.mark.slow
def test_a_point_in_time_recovery_makes_the_instances_the_local_recover_makes() -> None:
    data = pitr_plan(_moment(1))
    with mock_aws():
        seed()
        local = run_plan(data, run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_out = {k: r.outputs for k, r in local.outcome.records.items()}
        expected = rds_state()
    assert set(expected_status.values()) == {"succeeded"}, {
        k: r.error for k, r in local.outcome.records.items()
    }
    assert expected["instances"]["orders-pitr"]["class"] == "db.t3.small"
    assert expected["instances"]["orders-pitr"]["tags"]["team"] == "orders"
    assert expected["instances"]["orders-then"]["port"] == 5433

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        seed()
        described = execute(exported.definition, table=exported.coordination_table)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert rds_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    assert {k: doc["steps"][sid]["out"] for k, sid in exported.sids.items()} == expected_out
    calls = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in described["history"]
        if e["type"] == "TaskScheduled"
        and e["taskScheduledEventDetails"]["resource"] == "restoreDBInstanceToPointInTime"
    ]
    by_target = {c["TargetDbInstanceIdentifier"]: c for c in calls}
    assert by_target["orders-pitr"]["UseLatestRestorableTime"] is True
    assert (
        by_target["orders-then"]["RestoreTime"]
        == data["services"]["orders-then"]["steps"][0]["with"]["restore_time"]
    )
    assert by_target["orders-copy"]["SourceDbInstanceIdentifier"] == "orders-pitr"


def _pitr_failing(moment: str) -> dict[str, Any]:
    return plan_data(
        {
            "missing": {"steps": [pitr_step(source_instance="ghost", target="ghost-pitr")]},
            "nobackup": {"steps": [pitr_step(source_instance="nobackup", target="nb-pitr")]},
            "member": {"steps": [pitr_step(source_instance="warehouse-a", target="wa-pitr")]},
            "future": {"steps": [pitr_step(target="future-pitr", restore_time="2999-01-01T00:00:00Z")]},
            "early": {"steps": [pitr_step(target="early-pitr", restore_time=moment)]},
        },
        name="pitr",
    )


@pytest.fixture
def _restore_window(monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's automated backups with what AWS reports and moto does not: the source's
    ``DbiResourceId`` and a restorable window starting two days ago (its start, ISO 8601)."""
    from moto.rds.models import DBInstanceAutomatedBackup

    earliest = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=2)
    monkeypatch.setattr(
        DBInstanceAutomatedBackup,
        "dbi_resource_id",
        property(lambda self: self.backend.databases[self.db_instance_identifier].dbi_resource_id),
        raising=False,
    )
    monkeypatch.setattr(
        DBInstanceAutomatedBackup,
        "restore_window",
        property(lambda self: {"EarliestTime": earliest}),
        raising=False,
    )
    return earliest.isoformat()


@pytest.mark.slow
def test_point_in_time_failures_have_the_local_messages_and_create_nothing(_restore_window: str) -> None:
    data = _pitr_failing(_moment(24 * 3))
    with mock_aws():
        seed(aurora=True)
        local = run_plan(data, run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_errors = {k: str(r.error) for k, r in local.outcome.records.items()}
        expected = rds_state()
    assert set(expected_status.values()) == {"failed"}
    assert expected_errors["missing.restore"] == "source DB instance ghost does not exist"
    assert (
        expected_errors["nobackup.restore"]
        == "automated backups are disabled on DB instance nobackup (backup retention 0)"
    )
    assert expected_errors["member.restore"] == (
        "DB instance warehouse-a belongs to Aurora cluster warehouse; restore the cluster instead"
    )
    when = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00"
    assert re.fullmatch(
        rf"2999-01-01T00:00:00Z is outside the restorable window {re.escape(_restore_window)} - {when}",
        expected_errors["future.restore"],
    ), expected_errors["future.restore"]
    assert expected_errors["early.restore"].startswith(
        f"{data['services']['early']['steps'][0]['with']['restore_time']} is outside the restorable window {_restore_window} - "
    )

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed(aurora=True)
        described = execute(exported.definition, table=exported.coordination_table)
        assert rds_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    causes = {k: doc["steps"][sid]["cause"] for k, sid in exported.sids.items()}
    assert {doc["steps"][sid]["error"] for sid in exported.sids.values()} == {"drplan.StepFailed"}
    # The latest restorable time is "now" in moto, to the second in Step Functions' answers.
    latest = re.compile(r" - \S+$")
    assert {k: latest.sub("", v) for k, v in causes.items()} == {
        k: latest.sub("", v) for k, v in expected_errors.items()
    }
    for key in ("future.restore", "early.restore"):
        assert re.search(rf" - {when}$", causes[key]), causes[key]


@pytest.mark.slow
def test_a_point_in_time_drill_leaves_nothing_behind() -> None:
    data = pitr_plan(_moment(1))
    with mock_aws():
        seed()
        before = rds_state()
        local = run_plan(data, "drill", run_id=RUN_ID)
        names = {k: r.outputs["instance_id"] for k, r in local.outcome.records.items()}
        assert local.runner.cleanup() == []
        assert rds_state() == before
    assert names["orders-db.restore"] == f"orders-pitr-drill-{RUN_ID}"
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        seed()
        before = rds_state()
        described = execute(exported.definition, table=exported.coordination_table)
        after = rds_state()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == before
    doc = records(described)
    assert {k: doc["steps"][sid]["out"]["instance_id"] for k, sid in exported.sids.items()} == names
    assert {doc["cleanup"][sid]["status"] for sid in exported.sids.values()} == {"removed"}


# --- aws.rds.restore_cluster_snapshot: executed ------------------------------------------------------


def cluster_plan() -> dict[str, Any]:
    """The newest snapshot of ``warehouse`` with two instances, a port and tags; ``wh-nightly``
    again, named, into an engine given, with one instance; the newest snapshot of the Multi-AZ DB
    cluster ``ledger`` (no instances of drplan's)."""
    return plan_data(
        {
            "wh": {"steps": [cluster_step(instances=2, port=5433, tags={"team": "data"}, max_age="PT6H")]},
            # The engine left to the snapshot: a Multi-AZ DB cluster, decided when the step runs.
            "ledger": {
                "steps": [cluster_step(source_cluster="ledger", target="ledger-restored", instances=2)]
            },
            "wh-copy": {
                "depends_on": ["wh"],
                "steps": [
                    cluster_step(
                        snapshot="wh-nightly",
                        target="wh-copy",
                        engine="aurora-postgresql",
                        instance_class="db.r6g.large",
                    )
                ],
            },
        },
        name="warehouse",
    )


@pytest.mark.slow
def test_a_cluster_recovery_makes_the_cluster_and_instances_the_local_recover_makes() -> None:
    data = cluster_plan()
    with mock_aws():
        seed(aurora=True)
        local = run_plan(data, run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_out = {k: _outputs(r.outputs) for k, r in local.outcome.records.items()}
        expected = rds_state()
    assert set(expected_status.values()) == {"succeeded"}, {
        k: r.error for k, r in local.outcome.records.items()
    }
    made = expected["clusters"]["wh-restored"]
    assert made["members"] == [("wh-restored-1", True), ("wh-restored-2", False)]
    assert (made["port"], made["tags"]["team"]) == (5433, "data")
    assert expected["instances"]["wh-restored-2"]["tags"]["team"] == "data"
    assert expected_out["wh.restore"]["snapshot_id"] == "wh-nightly"  # newer than the automated one
    assert expected["clusters"]["ledger-restored"]["members"] == []
    assert expected_out["ledger.restore"]["snapshot_id"] == "ledger-nightly"

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        seed(aurora=True)
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert rds_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    assert {k: _outputs(doc["steps"][sid]["out"]) for k, sid in exported.sids.items()} == expected_out


def _cluster_failing() -> dict[str, Any]:
    """Steps that fail before creating anything: a named snapshot that does not exist, a source
    without snapshots, a snapshot older than ``max_age``, a cluster name taken by another cluster,
    an instance name taken by another instance."""
    return plan_data(
        {
            "missing": {"steps": [cluster_step(snapshot="wh-nope", target="a")]},
            "ghost": {"steps": [cluster_step(source_cluster="ghost", target="b")]},
            "stale": {"steps": [cluster_step(target="c", max_age="PT2H")]},
            "taken": {"steps": [cluster_step(target="warehouse")]},
            "instance": {"steps": [cluster_step(target="nobackup", instances=2)]},
        },
        name="warehouse",
    )


@pytest.mark.slow
def test_cluster_failures_have_the_local_messages_and_create_nothing() -> None:
    data = _cluster_failing()

    def seeded() -> None:  # "nobackup-2" is taken by a DB instance that is not this step's
        seed(aurora=True, hours=3)
        boto3.client("rds", region_name=REGION).create_db_instance(
            DBInstanceIdentifier="nobackup-2",
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            **LOGIN,
        )

    with mock_aws():
        seeded()
        local = run_plan(data, run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_errors = {k: str(r.error) for k, r in local.outcome.records.items() if r.error}
        expected = rds_state()
    assert expected_errors["missing.restore"] == "DB cluster snapshot wh-nope does not exist"
    assert expected_errors["ghost.restore"] == "DB cluster ghost has no available DB cluster snapshots"
    assert re.fullmatch(
        r"DB cluster snapshot wh-nightly is 3h old, older than the allowed 2h \(max_age\); nothing restored",
        expected_errors["stale.restore"],
    ), expected_errors["stale.restore"]
    assert expected_errors["taken.restore"] == "DB cluster warehouse already exists; refusing to overwrite it"
    assert (
        expected_errors["instance.restore"] == "DB instance nobackup-2 already exists; refusing to touch it"
    )
    assert set(expected_status.values()) == {"failed"}

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seeded()
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert rds_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    assert {
        k: doc["steps"][sid].get("cause") for k, sid in exported.sids.items() if k in expected_errors
    } == expected_errors


@pytest.mark.slow
def test_a_cluster_drill_leaves_nothing_behind() -> None:
    data = cluster_plan()
    with mock_aws():
        seed(aurora=True)
        before = rds_state()
        local = run_plan(data, "drill", run_id=RUN_ID)
        names = {k: r.outputs["cluster_id"] for k, r in local.outcome.records.items()}
        assert rds_state() != before
        assert local.runner.cleanup() == []
        assert rds_state() == before
    assert names["wh.restore"] == f"wh-restored-drill-{RUN_ID}"
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with mock_aws(config=SFN):
        seed(aurora=True)
        before = rds_state()
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        after = rds_state()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert after == before
    doc = records(described)
    assert {k: doc["steps"][sid]["out"]["cluster_id"] for k, sid in exported.sids.items()} == names
    assert {doc["cleanup"][sid]["status"] for sid in exported.sids.values()} == {"removed"}
    created = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])["DbInstanceIdentifier"]
        for e in described["history"]
        if e["type"] == "TaskScheduled" and e["taskScheduledEventDetails"]["resource"] == "createDBInstance"
    ]
    assert created == [
        f"wh-restored-drill-{RUN_ID}-1",
        f"wh-restored-drill-{RUN_ID}-2",
        f"wh-copy-drill-{RUN_ID}-1",
    ]


@contextlib.contextmanager
def _rds_errors_named_as_step_functions() -> Iterator[None]:
    """moto's interpreter names an RDS error after nothing Step Functions would (``rds.rdsException``):
    here it is named as Step Functions names the AWS SDK's exception, ``Rds.`` and the error's shape
    spelled word by word with ``Exception`` for ``Fault`` (``InvalidDBClusterStateFault`` is
    ``Rds.InvalidDbClusterStateException``), as the RDS translations catch it."""
    import botocore.session
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    model = botocore.session.get_session().get_service_model("rds")
    shapes = {s.metadata.get("error", {}).get("code", s.name): s.name for s in model.error_shapes}
    original = StateTaskServiceAwsSdk._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        event = original(self, env, ex)
        if isinstance(ex, ClientError) and self.resource.api_name == "rds":
            shape = shapes.get(str(ex.response["Error"].get("Code")))
            name = re.sub(r"Fault$", "", StateTaskService._to_sfn_cased(shape)) if shape else "Rds"
            error = f"Rds.{name}Exception"
            event.error_name.error_name = error
            event.event_details["taskFailedEventDetails"]["error"] = error
        return event

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(StateTaskServiceAwsSdk, "_from_error", from_error)
        yield
    finally:
        patch.undo()


def _undo_machine(data: dict[str, Any], key: str) -> dict[str, Any]:
    """The undo of step ``key`` alone, as a machine: what a drill's cleanup or a rollback runs."""
    from drplan.stepfunctions.builder import Names, Scope, Values, machine
    from drplan.stepfunctions.rds_cluster import RdsRestoreClusterSnapshot
    from drplan.stepfunctions.tasks import StepInfo

    step = build_plan(data).step(key)
    info = StepInfo(key, "s0", step, step.params, "recover", Values({}), {}, 600.0, 2400.0, options=FAST)
    scope = Scope(Names())
    undo = RdsRestoreClusterSnapshot().undo(info, scope)
    assert undo is not None
    entry = scope.add("the run", {"Type": "Pass", "Result": {"run": {"id": RUN_ID}, "w": {}}, "Next": undo})
    return machine(scope, entry)


@pytest.mark.slow
def test_the_undo_leaves_a_cluster_alone_when_someone_else_added_an_instance() -> None:
    """Someone adds instances to the restored cluster: the undo deletes the step's own instance,
    not the others nor the cluster, and fails with the local message."""
    data = plan_data({"wh": {"steps": [cluster_step(instances=1)]}})
    intruder = {
        "DBInstanceIdentifier": "intruder",
        "DBClusterIdentifier": "wh-restored",
        "Engine": "aurora-postgresql",
        "DBInstanceClass": "db.r6g.large",
    }
    with mock_aws():
        seed(aurora=True)
        local = run_plan(data, run_id=RUN_ID)
        assert local.record("wh.restore").status == "succeeded", local.record("wh.restore").error
        for name in ("intruder", "intruder-2"):
            boto3.client("rds", region_name=REGION).create_db_instance(
                **{**intruder, "DBInstanceIdentifier": name}
            )
        assert local.runner.undo(["wh.restore"], reason="test", timeout=5) == ["wh.restore"]
        (message,) = [e.data["error"] for e in local.events if e.kind == "undo.failed"]
        expected = rds_state()
    assert message == (
        "DB cluster wh-restored has DB instances drplan did not create (intruder, intruder-2); not deleting them"
    )
    assert "wh-restored-1" not in expected["instances"] and "intruder" in expected["instances"]

    definition = _undo_machine(data, "wh.restore")
    assert lint_definition(definition) == []
    with mock_aws(config=SFN), _rds_errors_named_as_step_functions():
        seed(aurora=True)
        assert run_plan(data, run_id=RUN_ID).record("wh.restore").status == "succeeded"
        for name in ("intruder", "intruder-2"):
            boto3.client("rds", region_name=REGION).create_db_instance(
                **{**intruder, "DBInstanceIdentifier": name}
            )
        described = execute(definition, table=None, fresh=True)
        assert rds_state() == expected
    assert (described["status"], described.get("error"), described.get("cause")) == (
        "FAILED",
        "drplan.StepFailed",
        message,
    )


def test_times_are_printed_as_the_local_messages_print_them() -> None:
    """The JSONata that prints a time in the restorable window's message prints what Python's
    ``isoformat`` prints: no fraction for whole seconds, microseconds otherwise."""
    import jsonata

    from drplan.stepfunctions.rds import _py_iso

    for moment in (
        dt.datetime(2026, 1, 1, 8, 0, 0, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 11, 20, 23, 59, 59, 5000, tzinfo=dt.timezone.utc),
        dt.datetime(1999, 12, 31, 0, 0, 1, 120000, tzinfo=dt.timezone.utc),
    ):
        millis = int(moment.timestamp() * 1000)
        assert jsonata.Jsonata(_py_iso(str(millis))).evaluate(None) == moment.isoformat()
