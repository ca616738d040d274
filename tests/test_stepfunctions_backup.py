"""aws.backup.restore exported to Step Functions and executed by moto's interpreter, against the same
emulated AWS Backup as drplan's own run (tests/moto_emulated.py: the sandbox's emulator,
restoring with moto's RDS, DynamoDB and EC2): the same statuses, outputs, restore metadata and
resources afterwards, the same failures with the same messages, and a drill that leaves nothing.

The plans are written from docs/actions.md. Recovery points, restore jobs and volumes get ids of
their own in each run: the comparison names them (a recovery point by the resource it backs up, a
job by its place, a volume by its Name tag).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.actions.backup.targets import build_metadata
from drplan.model import Mode, build_plan
from drplan.resources import Resource
from drplan.sandbox.backup_emulator import BackupEmulator
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.backup import BackupRestore
from drplan.stepfunctions.export import ExportRefused
from tests.moto_emulated import emulated_session, moto_interpreter_through, new_backup_emulator
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

ACTION = "aws.backup.restore"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"
VAULT = "dr-vault"
SOURCES = {
    "RDS": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:ledger",
    "DynamoDB": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders",
    "EBS": f"arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-0a1b2c3d4e5f60718",
}
ROOT = Path(__file__).resolve().parent.parent


# --- plans (docs/actions.md) and the AWS they run against ---------------------------------------------


def restore_step(rtype: str, target: str, step: str = "restore", **extra: Any) -> dict[str, Any]:
    params = {"vault": VAULT, "resource_arn": SOURCES[rtype], "iam_role_arn": ROLE, "target": target, **extra}
    return {"id": step, "uses": ACTION, "with": params, "estimate": "PT5M"}


def three_types(**extra: Any) -> dict[str, Any]:
    """An RDS instance (a class and Multi-AZ off through ``metadata``, the source's availability
    zone dropped by drplan), a DynamoDB table (``max_age``, step tags), an EBS volume (named by its
    tag, in the zone and type the metadata says)."""
    return plan_data(
        {
            "ledger": {
                "steps": [
                    restore_step(
                        "RDS",
                        "ledger-restored",
                        resource_type="RDS",
                        metadata={"DBInstanceClass": "db.m6g.large", "MultiAZ": "false"},
                        **extra,
                    )
                ]
            },
            "orders": {
                "steps": [
                    restore_step("DynamoDB", "orders-restored", max_age="PT6H", tags={"team": "orders"})
                ]
            },
            "files": {
                "steps": [
                    restore_step(
                        "EBS", "settlement", metadata={"availabilityZone": f"{REGION}b", "volumeType": "gp3"}
                    )
                ]
            },
        },
        name="backups",
    )


@contextlib.contextmanager
def emulated(sfn: bool = False) -> Iterator[BackupEmulator]:
    """moto (with its Step Functions interpreter when ``sfn``) and the AWS Backup emulator, which
    drplan's run and the interpreter both reach."""
    with mock_aws(config=SFN if sfn else None):
        emulator = new_backup_emulator()
        with (
            moto_interpreter_through(emulator, "backup", error_prefix="Backup"),
            moto_passes_timestamps_as_text(),
            moto_evaluates_jsonata(),
        ):
            yield emulator


def seed(emulator: BackupEmulator, *types: str, hours: float = 2) -> None:
    """A completed recovery point of each type's source in the vault, ``hours`` old."""
    for rtype in types:
        emulator.seed(
            region=REGION,
            vault=VAULT,
            resource_arn=SOURCES[rtype],
            resource_type=rtype,
            age=dt.timedelta(hours=hours),
        )


def _tags(items: Any) -> dict[str, str]:
    tags = {t["Key"]: t["Value"] for t in items or []}
    tags.pop("drplan:created", None)
    return tags


def aws_state(region: str = REGION) -> dict[str, Any]:
    """What a run leaves: DB instances, tables (items, tags), volumes (by Name tag); without what
    differs between two runs (ids AWS picks, creation times)."""
    rds = boto3.client("rds", region_name=region)
    instances = {
        db["DBInstanceIdentifier"]: {
            "status": db["DBInstanceStatus"],
            "class": db["DBInstanceClass"],
            "multi_az": db.get("MultiAZ"),
            "tags": _tags(db.get("TagList")),
        }
        for db in rds.describe_db_instances()["DBInstances"]
    }
    ddb = boto3.client("dynamodb", region_name=region)
    tables = {}
    for name in ddb.list_tables()["TableNames"]:
        arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
        tables[name] = {
            "items": sorted(i["pk"]["S"] for i in ddb.scan(TableName=name)["Items"]),
            "tags": _tags(ddb.list_tags_of_resource(ResourceArn=arn).get("Tags")),
        }
    ec2 = boto3.client("ec2", region_name=region)
    volumes = sorted(
        (
            {
                "tags": _tags(v.get("Tags")),
                "size": v["Size"],
                "zone": v["AvailabilityZone"],
                "type": v["VolumeType"],
                "state": v["State"],
            }
            for v in ec2.describe_volumes()["Volumes"]
        ),
        key=lambda v: json.dumps(v, sort_keys=True),
    )
    return {"instances": instances, "tables": tables, "volumes": volumes}


def jobs(emulator: BackupEmulator) -> list[tuple[str, dict[str, str]]]:
    """The restore jobs started: the type and the restore metadata (without the emulator's token)."""
    return sorted(
        (
            (job.point.resource_type, {k: v for k, v in job.metadata.items() if k != "__token"})
            for job in emulator.jobs.values()
        ),
        key=lambda j: json.dumps(j, sort_keys=True),
    )


def named(value: Any, emulator: BackupEmulator) -> Any:
    """``value`` with the ids of this run named: a recovery point by the resource it backs up and
    its age, restore jobs as ``JOB``, volumes as ``vol-ID``, DynamoDB backups as ``BACKUP``."""
    text = json.dumps(value, sort_keys=True)
    now = dt.datetime.now(dt.timezone.utc)
    for point in emulator.points.values():
        hours = round((now - point.created).total_seconds() / 3600)
        text = text.replace(point.arn, f"point-of:{point.resource_arn}@{hours}h")
    for job in emulator.jobs:
        text = text.replace(job, "JOB")
    text = re.sub(r"arn:aws:dynamodb:[^\"]*/backup/[0-9a-zA-Z.-]+", "BACKUP", text)
    return json.loads(re.sub(r"vol-[0-9a-f]{17}", "vol-ID", text))


def more_points(emulator: BackupEmulator, rtype: str) -> None:
    """Beside the seeded point of ``rtype``'s source: an older completed one and a newer one that
    is not usable (PARTIAL): "latest" is still the seeded one."""
    (point,) = [p for p in emulator.points.values() if p.resource_arn == SOURCES[rtype]]
    for status, hours in (("COMPLETED", 30), ("PARTIAL", 1)):
        arn = f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:{status.lower()}-{hours}-{id(emulator)}"
        emulator.points[arn] = dataclasses.replace(
            point,
            arn=arn,
            status=status,
            created=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours),
        )


def _created_now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- export ------------------------------------------------------------------------------------------


def variants() -> list[dict[str, Any]]:
    rds = {"resource_type": "RDS"}
    point = f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:0a1b2c3d"
    out = [
        three_types(),
        three_types(max_age="PT6H", tags={"team": "ledger"}, instance_type="db.r6g.large"),
        plan_data({"s": {"steps": [restore_step("RDS", "x", recovery_point=point, **rds)]}}),
        plan_data({"s": {"steps": [restore_step("DynamoDB", "x", recovery_point=point, vault=None)]}}),
        plan_data({"s": {"steps": [restore_step("DynamoDB", "x", kms_key="alias/dr")]}}),
        plan_data({"s": {"steps": [restore_step("EBS", "x", availability_zone=f"{REGION}a", retries=1)]}}),
        plan_data({"s": {"steps": [restore_step("RDS", "x", subnet="subnet-1")]}}),  # refused at run
        plan_data({"s": {"steps": [restore_step("RDS", "x", metadata={"dbinstanceidentifier": "y"})]}}),
    ]
    for data in out:
        for step in data["services"][next(iter(data["services"]))]["steps"]:
            step["with"] = {k: v for k, v in step["with"].items() if v is not None}
            if "retries" in step["with"]:
                step["retries"] = step["with"].pop("retries")
    return out


def test_every_variant_exports_lints_and_the_role_may_restore() -> None:
    for data in variants():
        for mode in ("recover", "drill"):
            exported = export_plan(build_plan(data), mode)
            assert lint_definition(exported.definition) == [], (data, mode)
            role = exported.template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
            for document in (exported.policy, role):
                actions = {a for s in document["Statement"] for a in s["Action"]}
                called = _called(exported.definition)
                assert (
                    "backup:ListRecoveryPointsByBackupVault" in called
                    or "backup:DescribeRecoveryPoint" in called
                )
                assert not {c for c in called if not any(_grants(a, c) for a in actions)}, (mode, called)
                # AWS Backup assumes the plan's role: StartRestoreJob passes it, as the local caller does.
                passing = [s for s in document["Statement"] if "iam:PassRole" in s["Action"]]
                assert passing and all(
                    s["Condition"]["StringEquals"]["iam:PassedToService"] == "backup.amazonaws.com"
                    for s in passing
                )
            assert ROLE in json.dumps(
                [s for s in exported.policy["Statement"] if "iam:PassRole" in s["Action"]]
            )


def test_types_it_cannot_restore_exactly_are_refused_with_the_reason() -> None:
    cases = {
        "EC2": (f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0123456789abcdef0", {}),
        "Aurora": (f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:ledger", {"resource_type": "Aurora"}),
        "cluster": (f"arn:aws:rds:{REGION}:{ACCOUNT}:cluster:ledger", {}),
        "EFS": (f"arn:aws:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-0123456789abcdef0", {}),
        "reference": ("${net.find.arn}", {}),
    }
    reasons = {
        "EC2": "EC2 instance restores",
        "Aurora": "Aurora restores",
        "cluster": "give `resource_type`",
        "EFS": "EFS restores",
        "reference": "must be known when the plan is exported",
    }
    for name, (arn, extra) in cases.items():
        params = {"vault": VAULT, "resource_arn": arn, "iam_role_arn": ROLE, "target": "x", **extra}
        data = plan_data({"s": {"steps": [{"id": "r", "uses": ACTION, "with": params}]}})
        if name == "reference":
            data["services"]["net"] = {
                "steps": [{"id": "find", "uses": "wait", "with": {"duration": "PT1S"}}]
            }
            data["services"]["s"]["depends_on"] = ["net"]
        with pytest.raises(ExportRefused, match=re.escape(reasons[name])):
            export_plan(build_plan(data), "recover")


def test_the_example_payments_plan_exports_and_lints() -> None:
    data = json.loads((ROOT / "plans" / "payments-backup.json").read_text())
    for mode in ("recover", "drill"):
        exported = export_plan(build_plan(data), mode)
        assert lint_definition(exported.definition) == []
        called = _called(exported.definition)
        actions = {a for s in exported.policy["Statement"] for a in s["Action"]}
        assert not {c for c in called if not any(_grants(a, c) for a in actions)}


# --- the restore metadata: build_metadata, in JSONata -------------------------------------------------


def _states(node: Any) -> dict[str, Any]:
    """Every state of a definition (its Parallel states' branches too), by name."""
    found: dict[str, Any] = {}
    if isinstance(node, dict):
        found.update(node.get("States", {}))
        for value in node.values():
            found.update(_states(value))
    elif isinstance(node, list):
        for value in node:
            found.update(_states(value))
    return found


def _shaped(data: dict[str, Any], restore: dict[str, str]) -> Any:
    """What the state machine's metadata state makes of ``restore`` for the plan's one step."""
    import jsonata

    states = _states(export_plan(build_plan(data), "recover").definition)
    values, shaping = states["s.restore the step's values"], states["s.restore restore metadata"]
    vals = {k.removesuffix(".$"): v for k, v in values["Parameters"].items() if not k.endswith(".$")}
    doc = {"w": {"vals": vals, "meta": {"RestoreMetadata": restore}}}
    expr = shaping["Output"].removeprefix("{%").removesuffix("%}")
    return jsonata.Jsonata(expr).evaluate(None, {"states": {"input": doc}})["w"]["md"]


@pytest.mark.parametrize(
    ("rtype", "params", "restore"),
    [
        ("RDS", {}, {"DBInstanceIdentifier": "ledger", "Engine": "mysql", "AvailabilityZone": "us-east-1a"}),
        ("RDS", {}, {"dbinstanceidentifier": "ledger", "MultiAZ": "True", "AvailabilityZone": "us-east-1a"}),
        (
            "RDS",
            {"availability_zone": "us-east-1c", "instance_type": "db.r6g.large"},
            {"MultiAZ": "true", "availabilityzone": "us-east-1a", "dbInstanceClass": "db.t3.micro"},
        ),
        ("RDS", {"metadata": {"multiaz": "true", "Port": "3307"}}, {"AvailabilityZone": "z", "Port": "3306"}),
        ("RDS", {"metadata": {"DBINSTANCEIDENTIFIER": "ledger-restored"}}, {}),
        ("DynamoDB", {"kms_key": "alias/dr"}, {"targetTableName": "orders", "EncryptionType": "DEFAULT"}),
        ("DynamoDB", {}, {}),
        ("EBS", {"availability_zone": "us-east-1c"}, {"AvailabilityZone": "us-east-1a", "volumeType": "gp2"}),
        (
            "EBS",
            {"kms_key": "arn:aws:kms:us-east-1:1:key/k", "metadata": {"iops": "4000"}},
            {"encrypted": "false"},
        ),
    ],
)
def test_the_restore_metadata_is_build_metadatas(
    rtype: str, params: dict[str, Any], restore: dict[str, str]
) -> None:
    """The JSONata state applies what drplan sets to the metadata AWS returns exactly as
    ``build_metadata`` does (keys matched case-insensitively, the recovery point's spelling kept
    for typed parameters, Multi-AZ tidying), here evaluated on its own."""
    from drplan.actions.backup.targets import TYPES, typed_overrides

    data = plan_data({"s": {"steps": [restore_step(rtype, "ledger-restored", **params)]}})
    expected = build_metadata(
        TYPES[rtype], restore, "ledger-restored", params.get("metadata", {}), typed_overrides(rtype, params)
    )
    shaped = _shaped(data, restore)
    assert shaped == expected
    assert list(shaped) == list(expected)  # the same keys, spelled alike, in the same order


# --- execution -------------------------------------------------------------------------------------


def _created(data: dict[str, Any], mode: Mode, key: str, outputs: Mapping[str, Any]) -> list[Resource]:
    """What the translation says a step created (the evidence's cleanup proof), from its outputs."""
    service, step = key.split(".")
    params = next(s for s in data["services"][service]["steps"] if s["id"] == step)["with"]
    return BackupRestore().created(params, outputs, mode, REGION)


@pytest.mark.slow
def test_a_recovery_restores_what_the_local_recover_restores() -> None:
    """RDS, DynamoDB and EBS from the newest of their recovery points: the same restore metadata
    sent, the same resources (class, tags, items, zone), the same outputs and journaled resources."""
    data = three_types()
    with emulated() as emulator:
        seed(emulator, "RDS", "DynamoDB", "EBS")
        more_points(emulator, "DynamoDB")
        local = run_plan(data, run_id=RUN_ID, aws=emulated_session(emulator, "backup"))
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        assert set(expected_status.values()) == {"succeeded"}, {
            k: r.error for k, r in local.outcome.records.items()
        }
        expected = aws_state()
        expected_jobs = jobs(emulator)
        expected_out = {k: named(r.outputs, emulator) for k, r in local.outcome.records.items()}
        expected_resources = {
            k: named([x.to_json() for x in r.resources], emulator) for k, r in local.outcome.records.items()
        }
    assert expected["instances"]["ledger-restored"]["class"] == "db.m6g.large"
    assert expected["instances"]["ledger-restored"]["tags"]["drplan:step"] == "ledger.restore"
    assert expected["tables"]["orders-restored"]["tags"]["team"] == "orders"
    (volume,) = expected["volumes"]
    assert volume["tags"]["Name"] == "settlement" and volume["zone"] == f"{REGION}b"
    assert expected_out["ledger.restore"]["endpoint"] and expected_out["ledger.restore"]["port"]
    assert expected_out["files.restore"]["volume_id"] == "vol-ID"
    assert expected_out["orders.restore"]["recovery_point_arn"] == f"point-of:{SOURCES['DynamoDB']}@2h"

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with emulated(sfn=True) as emulator:
        seed(emulator, "RDS", "DynamoDB", "EBS")
        more_points(emulator, "DynamoDB")
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
        assert jobs(emulator) == expected_jobs
        doc = records(described)
        out = {k: named(doc["steps"][sid]["out"], emulator) for k, sid in exported.sids.items()}
        made = {
            k: named([x.to_json() for x in _created(data, "recover", k, doc["steps"][sid]["out"])], emulator)
            for k, sid in exported.sids.items()
        }
    assert statuses(doc, exported.sids) == expected_status
    assert out == expected_out
    assert made == expected_resources


OTHER_TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/carts"
BROKEN_TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/broken"


def _failing() -> dict[str, Any]:
    """Steps that fail, each before or after starting its job, and one that succeeds."""

    def step(service: str, rtype: str, target: str, **extra: Any) -> dict[str, Any]:
        return {service: {"steps": [restore_step(rtype, target, **extra)]}}

    missing_point = f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:0a1b2c3d-nothing"
    return plan_data(
        {
            **step("novault", "DynamoDB", "t-novault", vault="no-such-vault"),
            **step("nopoint", "DynamoDB", "t-nopoint", resource_arn=OTHER_TABLE),
            **step("stale", "DynamoDB", "t-stale", max_age="PT1H"),
            **step("broken", "DynamoDB", "t-broken", resource_arn=BROKEN_TABLE),
            **step("taken", "DynamoDB", "existing"),
            **step("typed", "RDS", "db-typed", subnet="subnet-0123456789abcdef0"),
            **step("clash", "RDS", "db-clash", metadata={"DBInstanceIdentifier": "elsewhere"}),
            **step("notinvault", "DynamoDB", "t-explicit", recovery_point=missing_point),
            **step("wrongtype", "EBS", "t-wrongtype", resource_arn=SOURCES["DynamoDB"], resource_type="EBS"),
            **step("fine", "DynamoDB", "t-fine", max_age="PT6H"),
        },
        name="failing",
    )


def _seed_failing(emulator: BackupEmulator) -> None:
    seed(emulator, "DynamoDB", "RDS")
    point = emulator.seed(
        region=REGION,
        vault=VAULT,
        resource_arn=BROKEN_TABLE,
        resource_type="DynamoDB",
        age=dt.timedelta(hours=2),
    )
    # The backup behind the recovery point is gone: the restore job fails, as AWS's would.
    boto3.client("dynamodb", region_name=REGION).delete_backup(BackupArn=point.backing)
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="existing",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.mark.slow
def test_failures_have_the_local_messages() -> None:
    data = _failing()
    with emulated() as emulator:
        _seed_failing(emulator)
        local = run_plan(data, run_id=RUN_ID, aws=emulated_session(emulator, "backup"))
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected_errors = named({k: r.error for k, r in local.outcome.records.items() if r.error}, emulator)
        expected = aws_state()
    assert expected_status == {k: "failed" for k in expected_status if k != "fine.restore"} | {
        "fine.restore": "succeeded"
    }
    source, other = SOURCES["DynamoDB"], OTHER_TABLE
    assert expected_errors["novault.restore"] == f"backup vault no-such-vault is not in {REGION}"
    assert expected_errors["nopoint.restore"] == f"vault {VAULT} has no completed recovery point of {other}"
    assert expected_errors["stale.restore"] == (
        f"recovery point point-of:{source}@2h is 2h old, older than the allowed 1h (max_age); nothing restored"
    )
    assert re.fullmatch(
        r"restore job JOB FAILED: BackupNotFoundException: .*", expected_errors["broken.restore"]
    )
    assert expected_errors["taken.restore"] == "table existing already exists; refusing to overwrite it"
    assert expected_errors["typed.restore"].startswith("`subnet` does not apply to a RDS restore")
    assert expected_errors["clash.restore"].startswith(
        "`metadata.DBInstanceIdentifier` cannot be 'elsewhere'"
    )
    assert expected_errors["notinvault.restore"].endswith(f"is not in vault {VAULT}")
    assert (
        expected_errors["wrongtype.restore"]
        == f"resource_type is EBS, but point-of:{source}@2h backs up DynamoDB"
    )

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with emulated(sfn=True) as emulator:
        _seed_failing(emulator)
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert aws_state() == expected
        doc = named(records(described), emulator)
    assert statuses(doc, exported.sids) == expected_status
    errors = {k: doc["steps"][sid].get("cause") for k, sid in exported.sids.items() if k in expected_errors}
    assert errors == expected_errors
    assert {doc["steps"][exported.sids[k]]["error"] for k in expected_errors} == {"drplan.StepFailed"}


@pytest.mark.slow
def test_a_recovery_point_named_by_arn_with_or_without_its_vault() -> None:
    """An explicit recovery point: described in ``vault``, or in the vault
    ``ListRecoveryPointsByResource`` names for it."""

    def plan(emulator: BackupEmulator) -> dict[str, Any]:
        (point,) = [p.arn for p in emulator.points.values() if p.resource_arn == SOURCES["DynamoDB"]]
        given = restore_step("DynamoDB", "orders-given", recovery_point=point)
        found = restore_step("DynamoDB", "orders-found", recovery_point=point)
        del found["with"]["vault"]
        return plan_data({"given": {"steps": [given]}, "found": {"steps": [found]}}, name="explicit")

    with emulated() as emulator:
        seed(emulator, "DynamoDB")
        data = plan(emulator)
        more_points(emulator, "DynamoDB")
        local = run_plan(data, run_id=RUN_ID, aws=emulated_session(emulator, "backup"))
        assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
        expected = aws_state()
        expected_out = {k: named(r.outputs, emulator) for k, r in local.outcome.records.items()}
    with emulated(sfn=True) as emulator:
        seed(emulator, "DynamoDB")
        data = plan(emulator)
        more_points(emulator, "DynamoDB")
        exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
        assert lint_definition(exported.definition) == []
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
        out = {
            k: named(records(described)["steps"][sid]["out"], emulator) for k, sid in exported.sids.items()
        }
        called = [
            e["taskScheduledEventDetails"]["resource"]
            for e in described["history"]
            if e["type"] == "TaskScheduled"
        ]
    assert out == expected_out
    assert called.count("describeRecoveryPoint") == 2 and called.count("listRecoveryPointsByResource") == 1


@pytest.mark.slow
def test_a_drill_leaves_nothing_behind() -> None:
    """The drill restores under the drill's names and its cleanup deletes the DB instance, the
    table and the volume: AWS is as before, as after a local drill."""
    data = three_types()
    with emulated() as emulator:
        seed(emulator, "RDS", "DynamoDB", "EBS")
        before = aws_state()
        local = run_plan(data, "drill", run_id=RUN_ID, aws=emulated_session(emulator, "backup"))
        assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
        during = aws_state()
        assert local.runner.cleanup() == []
        assert aws_state() == before
    assert f"ledger-restored-drill-{RUN_ID}" in during["instances"]

    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    with emulated(sfn=True) as emulator:
        seed(emulator, "RDS", "DynamoDB", "EBS")
        assert aws_state() == before
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == before
        assert len(emulator.jobs) == 3
        doc = records(described)
    assert {doc["cleanup"][sid]["status"] for sid in exported.sids.values()} == {"removed"}
    assert doc["steps"][exported.sids["ledger.restore"]]["out"]["name"] == f"ledger-restored-drill-{RUN_ID}"


def _payments_restores() -> dict[str, Any]:
    """plans/payments-backup.json's three restores (RDS, DynamoDB, EBS from the cross-region copies
    in the recovery region's vault), without the checks, which reach hosts that are not here."""
    data = json.loads((ROOT / "plans" / "payments-backup.json").read_text())
    del data["services"]["api"]
    ledger = data["services"]["ledger-db"]
    ledger["steps"] = [s for s in ledger["steps"] if s["uses"] == ACTION]
    return data


def _seed_payments(emulator: BackupEmulator, data: dict[str, Any]) -> None:
    for service in data["services"].values():
        for step in service["steps"]:
            p = step["with"]
            emulator.seed(
                region="us-west-2",
                vault=p["vault"],
                resource_arn=p["resource_arn"],
                resource_type=p.get("resource_type"),
                age=dt.timedelta(hours=3),
            )


@pytest.mark.slow
def test_the_payments_plans_restores_run_as_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example plan's restores, in its recovery region: the recovery and the drill give the
    local run's statuses, outputs and resources; the drill leaves nothing behind."""
    import tests.test_stepfunctions as sfn_tests

    monkeypatch.setattr(sfn_tests, "REGION", "us-west-2")  # where execute() runs the machine
    data = _payments_restores()
    modes: tuple[Mode, ...] = ("recover", "drill")
    for mode in modes:
        with emulated() as emulator:
            _seed_payments(emulator, data)
            before = aws_state("us-west-2")
            local = run_plan(data, mode, run_id=RUN_ID, aws=emulated_session(emulator, "backup", "us-west-2"))
            expected_status = {k: r.status for k, r in local.outcome.records.items()}
            assert set(expected_status.values()) == {"succeeded"}, [
                r.error for r in local.outcome.records.values()
            ]
            expected = aws_state("us-west-2")
            expected_out = {k: named(r.outputs, emulator) for k, r in local.outcome.records.items()}
            if mode == "drill":
                assert local.runner.cleanup() == []
                assert aws_state("us-west-2") == before
        assert expected["instances"][f"payments-ledger{'-dr-' + RUN_ID if mode == 'drill' else ''}"][
            "class"
        ] == ("db.m6g.large")
        exported = export_plan(build_plan(data), mode, options=FAST, history_budget=ONE_MACHINE)
        assert lint_definition(exported.definition) == []
        with emulated(sfn=True) as emulator:
            _seed_payments(emulator, data)
            described = execute(
                exported.definition, table=exported.coordination_table, created=_created_now()
            )
            assert described["status"] == "SUCCEEDED", described.get("cause")
            doc = records(described)
            out = {k: named(doc["steps"][sid]["out"], emulator) for k, sid in exported.sids.items()}
            assert aws_state("us-west-2") == (before if mode == "drill" else expected)
        assert statuses(doc, exported.sids) == expected_status
        assert out == expected_out


@pytest.mark.slow
def test_a_rollback_deletes_what_the_restores_created_as_the_local_rollback_does() -> None:
    """A recovery exported with --rollback-on-failure: a later step fails, and the undo of each
    restore (by its tags, in a recovery) deletes the DB instance, the table and the volume."""
    data = three_types()
    data["services"]["later"] = {
        "depends_on": ["ledger", "orders", "files"],
        "steps": [restore_step("DynamoDB", "never", vault="no-such-vault")],
    }
    with emulated() as emulator:
        seed(emulator, "RDS", "DynamoDB", "EBS")
        before = aws_state()
        local = run_plan(data, run_id=RUN_ID, aws=emulated_session(emulator, "backup"))
        assert local.outcome.records["later.restore"].status == "failed"
        assert local.runner.rollback() == []
        assert aws_state() == before
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE, rollback_on_failure=True
    )
    assert lint_definition(exported.definition) == []
    with emulated(sfn=True) as emulator:
        seed(emulator, "RDS", "DynamoDB", "EBS")
        described = execute(exported.definition, table=exported.coordination_table, created=_created_now())
        assert described["status"] == "FAILED"
        assert len(emulator.jobs) == 3
        assert aws_state() == before
    doc = records(described)
    for key in ("ledger.restore", "orders.restore", "files.restore"):
        assert doc["steps"][exported.sids[key]]["status"] == "succeeded"
        assert doc["cleanup"][exported.sids[key]] == {"status": "removed"}


def test_a_refused_restore_says_what_aws_backup_said() -> None:
    """StartRestoreJob refused (the emulator cannot be made to refuse one): the failure's message is
    AWS Backup's, cut from the cause Step Functions gives, as the local ``error_message``."""
    import jsonata

    exported = export_plan(
        build_plan(plan_data({"s": {"steps": [restore_step("DynamoDB", "x")]}})), "recover"
    )
    states = _states(exported.definition)
    start, refused = states["s.restore start restore job"], states["s.restore AWS Backup refused the restore"]
    assert sorted(start["Catch"][0]["ErrorEquals"]) == [
        "Backup.InvalidParameterValueException",
        "Backup.InvalidRequestException",
        "Backup.MissingParameterValueException",
        "Backup.ResourceNotFoundException",
    ]
    cause = "IAM role arn:x cannot be assumed (Service: Backup, Status Code: 400, Request ID: 1a2b-3c)"
    doc = {"w": {"error": {"Error": "Backup.InvalidParameterValueException", "Cause": cause}}}
    expr = refused["Cause"].removeprefix("{%").removesuffix("%}")
    message = jsonata.Jsonata(expr).evaluate(None, {"states": {"input": doc}})
    assert message == "AWS Backup refused the restore: IAM role arn:x cannot be assumed"
