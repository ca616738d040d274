"""``plan --preflight``: read-only checks against AWS, proven read-only by recording every call."""

from __future__ import annotations

import json

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from drplan.actions import registry
from drplan.aws import READ_ONLY_PREFIXES, AwsSession, ReadOnlyViolation
from drplan.cli import cli, main
from drplan.engine.preflight import run_preflight
from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.pipeline import load_plan
from drplan.sandbox import start_sandbox
from tests.conftest import PLANS


def test_a_read_only_session_refuses_writes():
    with mock_aws():
        session = AwsSession(region="us-east-1", read_only=True)
        with pytest.raises(ReadOnlyViolation, match="CreateTable"):
            session.client("dynamodb").create_table(
                TableName="x",
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        assert boto3.client("dynamodb", region_name="us-east-1").list_tables()["TableNames"] == []


@pytest.mark.parametrize("name", ["webshop", "payments-backup", "analytics-aurora", "status-page"])
def test_preflight_of_every_example_plan_makes_only_read_calls(name):
    plan, _ = load_plan(PLANS / f"{name}.json")
    with start_sandbox(plan) as box:
        calls = []
        session = box.session(read_only=True)
        session.on_call = calls.append
        prepared = prepare(plan, "recover", registry())
        report = run_preflight(prepared, session, RunOptions(**box.run_options()))
    assert calls, "preflight made no AWS call at all"
    writes = [c for c in calls if not c.operation.startswith(READ_ONLY_PREFIXES)]
    assert writes == []
    assert report.ok, {k: [r.message for r in v] for k, v in report.results.items()}
    # Every restore step reports the backup it would use, with its age.
    for key, step in prepared.steps.items():
        if step.action.family in ("database", "backup") or step.action.name == "aws.ec2.volume_from_snapshot":
            facts = [r.facts for r in report.results[key]]
            assert any("age_seconds" in f for f in facts), (key, facts)


def test_preflight_cli_reports_a_missing_backup_and_exits_1(tmp_path):
    plan = tmp_path / "p.json"
    plan.write_text(
        json.dumps(
            {
                "drplan": 1,
                "name": "p",
                "aws": {"region": "us-east-1"},
                "objectives": {"rto": "PT1H"},
                "services": {
                    "db": {
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "aws.dynamodb.restore_backup",
                                "estimate": "PT5M",
                                "with": {"source_table": "orders", "target": "orders-restored"},
                            },
                            {
                                "id": "check",
                                "uses": "check.tcp",
                                "estimate": "PT1M",
                                "with": {"host": "${db.restore.table_name}", "port": 1},
                            },
                        ]
                    }
                },
            }
        )
    )
    with mock_aws():
        result = CliRunner().invoke(cli, ["plan", str(plan), "--preflight", "--format", "json"])
    assert result.exit_code == 1, result.output
    document = json.loads(result.stdout)
    step = next(s for s in document["steps"] if s["key"] == "db.restore")
    assert step["preflight"][0]["status"] == "error"
    assert "orders" in step["preflight"][0]["message"]


def test_preflight_refuses_the_wrong_account(tmp_path, capsys):
    plan = tmp_path / "p.json"
    plan.write_text(
        json.dumps(
            {
                "drplan": 1,
                "name": "p",
                "aws": {"region": "us-east-1", "account_id": "999999999999"},
                "services": {"db": {"steps": [{"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}]}},
            }
        )
    )
    with mock_aws(), pytest.raises(SystemExit) as exit_info:
        main(["plan", str(plan), "--preflight"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "account 123456789012" in err and "999999999999" in err and "Traceback" not in err


def test_only_taken_names_and_unanswered_lookups_are_collisions():
    """What makes a drill refuse to start: a name it would create is taken, or AWS could not be
    asked. Other errors (a capacity out of range, a backup too old) are not collisions."""
    from drplan.actions.base import PreflightResult
    from drplan.engine.preflight import PreflightReport

    report = PreflightReport(
        {
            "db.restore": [
                PreflightResult("ok", "table t-drill is free", {"target": "t-drill"}, name="t-drill"),
                PreflightResult("error", "backup b is 3d old, over max_age 1d", {"recovery_point": "b"}),
            ],
            "web.scale": [
                # a capacity step's facts name its target size: not a name, not a collision
                PreflightResult("error", "desired 9 is above max 4", {"target": 9}),
            ],
            "cache.restore": [
                PreflightResult(
                    "error", "table c-drill already exists", {"target": "c-drill"}, name="c-drill"
                )
            ],
            "dns.cutover": [PreflightResult("error", "preflight failed: AccessDenied", checked=False)],
        }
    )
    assert report.collisions() == [
        "cache.restore: table c-drill already exists",
        "dns.cutover: preflight failed: AccessDenied",
    ]
    assert not report.ok


# --- a step's own role ------------------------------------------------------------------------------


def _role_plan(role: str) -> dict:
    return {
        "drplan": 1,
        "name": "dr-account",
        "aws": {"region": "us-east-1"},
        "objectives": {"rto": "PT1H"},
        "services": {
            "orders": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                        "role_arn": role,
                        "external_id": "acme-dr-7f3a",
                        "estimate": "PT10M",
                    },
                    {
                        "id": "scale",
                        "uses": "aws.ecs.set_capacity",
                        "with": {"cluster": "dr", "service": "orders", "desired": 2},
                        "role_arn": role,
                        "estimate": "PT5M",
                    },
                ]
            }
        },
    }


class _NoRole(AwsSession):
    """AWS where every role is refused (a trust policy that does not name the caller)."""

    def client(self, service, *, region=None, role_arn=None, endpoint_url=None):  # type: ignore[no-untyped-def]
        if role_arn:
            from drplan.errors import AwsError

            raise AwsError(
                f"cannot assume role {role_arn}: AccessDenied: not authorized to perform sts:AssumeRole"
            )
        return super().client(service, region=region, role_arn=role_arn, endpoint_url=endpoint_url)


def test_a_role_that_cannot_be_assumed_is_found_before_the_run_and_stops_a_drill_that_creates(tmp_path):
    from drplan.model import build_plan

    role = "arn:aws:iam::444455556666:role/dr-restore"
    # Recover mode, where the scaling step runs too (a drill skips it without drill_with); the
    # collisions are what a drill refuses on, whatever the mode.
    prepared = prepare(build_plan(_role_plan(role)), "recover", registry(), run_id="abcd1234")
    with mock_aws():
        report = run_preflight(prepared, _NoRole(region="us-east-1", read_only=True))
    restore, scale = report.results["orders.restore"], report.results["orders.scale"]
    assert len(restore) == 1 and restore[0].status == "error"  # the action is not asked: it would fail alike
    assert (
        restore[0].message.startswith(f"cannot assume role {role}:") and "AccessDenied" in restore[0].message
    )
    assert restore[0].checked is False  # its isolated names cannot be checked: the drill refuses
    assert scale[0].status == "error" and scale[0].checked  # scaling makes no name: an error, no refusal
    assert any(c.startswith("orders.restore: cannot assume role") for c in report.collisions())
    assert not any(c.startswith("orders.scale") for c in report.collisions())


def test_an_assumable_role_is_said_first_and_the_step_is_checked_as_that_role():
    from drplan.model import build_plan

    role = "arn:aws:iam::123456789012:role/dr-restore"
    prepared = prepare(build_plan(_role_plan(role)), "recover", registry(), run_id="abcd1234")
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        report = run_preflight(prepared, AwsSession(region="us-east-1", read_only=True))
    first = report.results["orders.restore"][0]
    assert (first.status, first.message) == ("ok", f"assumes role {role} (account 123456789012)")
    assert "assumed-role/dr-restore" in first.facts["as"]
    # Then the action's own findings, as that role: the table has no backup yet.
    assert any(
        r.status == "error" and "no available backups" in r.message
        for r in report.results["orders.restore"][1:]
    )
