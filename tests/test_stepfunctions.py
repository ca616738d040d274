"""drplan export stepfunctions: definitions that lint, and that run in moto's Step Functions
interpreter (``execute_state_machine``) to the same AWS state as drplan's own local run.

moto runs ``aws-sdk:`` Task states against its own emulated DynamoDB, RDS and Route 53, in the same
process, so a test seeds the sources, runs the plan locally (tests/runs.py), records what AWS then
holds, starts again from the same seed, executes the exported state machine, and compares.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import networkx as nx
import pytest
from click.testing import CliRunner
from moto import mock_aws

from drplan.engine.records import RunOptions
from drplan.model import build_plan
from drplan.stepfunctions import ExportRefused, export_plan
from drplan.stepfunctions.asl import Fork, General, Leaf, Series, decompose
from drplan.stepfunctions.builder import Names, Scope, Values, machine
from drplan.stepfunctions.tasks import StepInfo, newest
from tests.runs import plan_data, run_plan

try:  # the test extra must have it: a missing linter fails these tests rather than skipping them
    from statelint.config import Config as StatelintConfig
    from statelint.linter import Linter
except ImportError as exc:  # pragma: no cover - what a missing extra looks like
    raise ImportError("statelint is missing: add `statelint` to the test extra in pyproject.toml") from exc

REGION = "us-east-1"
RUN_ID = "5f0c1a2b"
#: Timings of the exported machine in tests: moto restores at once, nothing to wait for.
FAST = RunOptions(poll_initial=1, poll_max=1, retry_delay=2, undo_timeout=120)
#: FAST polls every second, so each step's worst case (polling until its timeout) is thousands of
#: history events and every plan here would run as child executions; moto's jobs end at once, so
#: these tests keep one state machine (tests/test_stepfunctions_parts.py tests the split).
ONE_MACHINE = 10**9
TABLE = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}
SFN = {"stepfunctions": {"execute_state_machine": True}}


@pytest.fixture(autouse=True)
def _quiet_moto() -> Iterator[None]:
    """moto's interpreter logs every state at WARNING; the tests read the history instead."""
    logger = logging.getLogger("moto")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# --- plans, written from docs/plan-format.md ----------------------------------------------------------


def restore(step: str, source: str, target: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": step,
        "uses": "aws.dynamodb.restore_backup",
        "with": {"source_table": source, "target": target},
        "estimate": "PT5M",
        **extra,
    }


def n_shape() -> dict[str, Any]:
    """a->c, b->c, b->d: the smallest graph that is not series-parallel."""
    return plan_data(
        {
            "a": {"steps": [restore("restore", "orders", "orders-restored")]},
            "b": {"steps": [restore("restore", "carts", "carts-restored")]},
            "c": {"depends_on": ["a", "b"], "steps": [restore("restore", "users", "users-restored")]},
            "d": {"depends_on": ["b"], "steps": [restore("restore", "stock", "stock-restored")]},
        },
        name="nshape",
    )


def shop() -> dict[str, Any]:
    """RDS, DynamoDB, Route 53 and a wait: the DNS record points at the restored database's
    endpoint (a reference), in a drill at a record of the drill zone named with the run id."""
    return plan_data(
        {
            "orders-db": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.rds.restore_snapshot",
                        # Manual snapshots only: moto also makes an automated one, and its state
                        # machine interpreter cannot compare timestamps (see test_the_newest_...).
                        "with": {
                            "source_instance": "shop-orders",
                            "target": "shop-orders-restored",
                            "include_automated": False,
                        },
                        "estimate": "PT20M",
                        "retries": 1,
                    },
                    {"id": "settle", "uses": "wait", "with": {"duration": "PT1S"}},
                ]
            },
            "carts": {"steps": [restore("restore", "shop-carts", "shop-carts-restored")]},
            "web": {
                "depends_on": ["orders-db", "carts"],
                "steps": [
                    {
                        "id": "dns",
                        "uses": "aws.route53.change_record",
                        "with": {
                            "zone_id": "ZONEPLACEHOLDER",
                            "name": "orders-db.internal.shop.example.com",
                            "type": "CNAME",
                            "ttl": 60,
                            "values": ["${orders-db.restore.endpoint}"],
                        },
                        "drill_with": {"name": "orders-db-{run_id}.internal.shop.example.com"},
                    }
                ],
            },
        },
        name="shop",
    )


# --- AWS: seeding and what it holds ---------------------------------------------------------------------


def seed(tables: tuple[str, ...] = (), *, rds: bool = False, zone: bool = False) -> str | None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    for name in tables:
        ddb.create_table(TableName=name, **TABLE)
        ddb.put_item(TableName=name, Item={"pk": {"S": f"{name}-1"}})
        ddb.create_backup(TableName=name, BackupName=f"{name}-nightly")
    if rds:
        client = boto3.client("rds", region_name=REGION)
        client.create_db_instance(
            DBInstanceIdentifier="shop-orders",
            Engine="postgres",
            DBInstanceClass="db.t3.micro",
            AllocatedStorage=20,
            MasterUsername="admin1",
            MasterUserPassword="password123",
        )
        client.create_db_snapshot(
            DBInstanceIdentifier="shop-orders", DBSnapshotIdentifier="shop-orders-nightly"
        )
    if zone:
        r53 = boto3.client("route53", region_name=REGION)
        created = r53.create_hosted_zone(Name="internal.shop.example.com", CallerReference="test")
        return str(created["HostedZone"]["Id"]).split("/")[-1]
    return None


def aws_state() -> dict[str, Any]:
    """What a recovery leaves in AWS, without what differs between any two runs (creation times,
    ids AWS picks): tables with their items and tags, DB instances, DNS records."""
    ddb = boto3.client("dynamodb", region_name=REGION)
    tables = {}
    for name in ddb.list_tables()["TableNames"]:
        if name.endswith("-coordination"):
            continue  # the state machine's own bookkeeping (the template creates it)
        arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
        tags = {t["Key"]: t["Value"] for t in ddb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])}
        tags.pop("drplan:created", None)
        items = sorted(i["pk"]["S"] for i in ddb.scan(TableName=name)["Items"])
        tables[name] = {"items": items, "tags": tags}
    rds = boto3.client("rds", region_name=REGION)
    instances = {}
    for db in rds.describe_db_instances()["DBInstances"]:
        tags = {t["Key"]: t["Value"] for t in db.get("TagList", [])}
        tags.pop("drplan:created", None)
        instances[db["DBInstanceIdentifier"]] = {
            "status": db["DBInstanceStatus"],
            "class": db["DBInstanceClass"],
            "endpoint": db.get("Endpoint", {}).get("Address"),
            "tags": tags,
        }
    r53 = boto3.client("route53", region_name=REGION)
    records = {}
    for zone in r53.list_hosted_zones()["HostedZones"]:
        for rrset in r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]:
            if rrset["Type"] in ("SOA", "NS"):
                continue
            records[(rrset["Name"], rrset["Type"])] = sorted(
                r["Value"] for r in rrset.get("ResourceRecords", [])
            )
    return {"tables": tables, "instances": instances, "records": records}


def with_zone(data: dict[str, Any], zone_id: str | None) -> dict[str, Any]:
    return json.loads(json.dumps(data).replace("ZONEPLACEHOLDER", zone_id or ""))


# --- running an exported state machine in moto --------------------------------------------------------


def execute(
    definition: dict[str, Any],
    *,
    table: str | None,
    timeout: float = 240,
    fresh: bool = False,
    created: str = "2026-01-01T00:00:00Z",
) -> dict[str, Any]:
    """Create the state machine (and its coordination table, as the template would), start an
    execution with a fixed run id (and ``created``, the run's start), wait for it to end: its
    description and history."""
    if table is not None:
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name=f"drplan-test-{time.monotonic_ns()}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    started = time.monotonic()
    execution = sfn.start_execution(
        stateMachineArn=arn,
        input=json.dumps({"w": {}} if fresh else {"run_id": RUN_ID, "created": created}),
    )["executionArn"]
    while True:
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            break
        assert time.monotonic() - started < timeout, "the execution did not end in time"
        time.sleep(0.1)
    history: list[dict[str, Any]] = []
    pages: dict[str, Any] = {"executionArn": execution, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**pages)
        history += page["events"]
        if not page.get("nextToken"):
            break
        pages["nextToken"] = page["nextToken"]
    described["seconds"] = time.monotonic() - started
    described["history"] = history
    return described


def records(described: dict[str, Any]) -> dict[str, Any]:
    """The steps' records: the output of a SUCCEEDED execution, the cause of a FAILED one."""
    text = described.get("output") if described["status"] == "SUCCEEDED" else described.get("cause")
    assert text, described
    return dict(json.loads(text))


def statuses(doc: dict[str, Any], sids: dict[str, str]) -> dict[str, str]:
    by_sid = doc["steps"]
    return {key: by_sid[sid]["status"] for key, sid in sids.items() if sid in by_sid}


def lint_definition(definition: dict[str, Any]) -> list[str]:
    return list(Linter.validate(json.dumps(definition), StatelintConfig(None, False, False)))


def lint_template(template: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint

    return [str(m) for m in lint(json.dumps(template), regions=[REGION])]


# --- the graph encoding ---------------------------------------------------------------------------------


def test_series_parallel_graphs_nest_and_the_n_needs_coordination() -> None:
    order = {k: i for i, k in enumerate("abcdefg")}
    diamond = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    assert decompose(diamond, order) == Series((Leaf("a"), Fork((Leaf("b"), Leaf("c"))), Leaf("d")))
    n = nx.DiGraph([("a", "c"), ("b", "c"), ("b", "d")])
    assert decompose(n, order) == General(("a", "b", "c", "d"))
    # An N inside a chain: only the N's steps are coordinated; the rest stays structured.
    chained = nx.DiGraph([("e", "a"), ("e", "b"), ("a", "c"), ("b", "c"), ("b", "d"), ("c", "f"), ("d", "f")])
    assert decompose(chained, order) == Series((Leaf("e"), General(("a", "b", "c", "d")), Leaf("f")))
    # Independent parts run side by side, each encoded on its own.
    apart = nx.DiGraph([("a", "b")])
    apart.add_node("g")
    assert decompose(apart, order) == Fork((Series((Leaf("a"), Leaf("b"))), Leaf("g")))


def test_every_export_lints_and_the_template_passes_cfn_lint() -> None:
    plans = [n_shape(), with_zone(shop(), "Z0123456789ABCDEFGHIJ")]
    for data in plans:
        plan = build_plan(data)
        for mode in ("recover", "drill"):
            exported = export_plan(plan, mode)
            assert lint_definition(exported.definition) == [], (data["name"], mode)
            assert lint_template(exported.template) == [], (data["name"], mode)
            statements = exported.policy["Statement"]
            actions = {a for s in statements for a in s["Action"]}
            assert "sts:GetCallerIdentity" not in actions  # the state machine never calls it
            called = _called(exported.definition)
            missing = {c for c in called if not any(_grants(a, c) for a in actions)}
            assert not missing, f"{data['name']} {mode}: the role cannot call {sorted(missing)}"


def _called(node: Any) -> set[str]:
    """Every API the definition calls, as IAM actions (``aws-sdk:rds:describeDBInstances`` ->
    ``rds:DescribeDBInstances``)."""
    found: set[str] = set()
    if isinstance(node, dict):
        resource = node.get("Resource")
        if isinstance(resource, str) and ":aws-sdk:" in resource:
            service, action = resource.split(":aws-sdk:")[1].split(":")
            found.add(f"{service}:{action[0].upper()}{action[1:].split('.')[0]}")
        for value in node.values():
            found |= _called(value)
    elif isinstance(node, list):
        for value in node:
            found |= _called(value)
    return found


def _grants(granted: str, call: str) -> bool:
    return granted == call or (granted.endswith("*") and call.startswith(granted[:-1]))


def test_steps_without_a_translation_are_refused_by_name() -> None:
    data = plan_data(
        {
            "db": {"steps": [restore("restore", "orders", "orders-restored")]},
            "web": {
                "steps": [
                    {
                        "id": "healthy",
                        "uses": "check.http",
                        "with": {"url": "https://shop.example.com/health"},
                    },
                    {"id": "run", "uses": "command", "with": {"run": ["true"]}},
                    restore(
                        "old",
                        "users",
                        "users-restored",
                        **{"with": {"source_table": "users", "target": "u-r", "max_age": "PT1H"}},
                    ),
                ]
            },
        }
    )
    with pytest.raises(ExportRefused) as refused:
        export_plan(build_plan(data), "recover")
    message = str(refused.value)
    assert "web.healthy" not in message  # checks are translated (tests/test_stepfunctions_checks.py)
    assert (
        "web.run (command): a program on the machine that runs drplan: no state machine can run it" in message
    )
    assert "web.old" not in message  # `max_age` is translated (tests/test_stepfunctions_freshness.py)
    assert "  db.restore" not in message
    assert refused.value.exit_code == 1


# --- executed: the same AWS state as drplan's own run ----------------------------------------------------


def _newest_machine(created: tuple[str, ...], pages: list[dict[str, Any]], items: str) -> dict[str, Any]:
    """The "latest backup" loop alone, its list calls replaced by pages given here: moto returns
    timestamps as Python datetimes its own interpreter cannot compare, so the choice among several
    backups is tested on the ISO 8601 strings Step Functions passes (second precision, which is
    all moto's comparison parses)."""
    plan = build_plan(n_shape())
    step = plan.step("a.restore")
    info = StepInfo("a.restore", "s0", step, step.params, "recover", Values({}), {}, 300.0, 1200.0)
    scope = Scope(Names())
    end = scope.add("chosen", {"Type": "Pass", "InputPath": "$.w.best.v", "End": True})
    first = newest(
        info,
        scope,
        what="backups",
        service="dynamodb",
        action="listBackups",
        parameters={},
        items=items,
        token_out="Next",
        token_in="Next",
        status=("Status", "AVAILABLE"),
        created=created,
        missing="no backups",
        then=end,
    )
    count = "a.restore count backups"
    scope.states[first] = {"Type": "Pass", "Result": pages[0], "ResultPath": "$.w.page", "Next": count}
    scope.states["a.restore list more backups"] = {
        "Type": "Pass",
        "Result": pages[1] if len(pages) > 1 else {},
        "ResultPath": "$.w.page",
        "Next": count,
    }
    return machine(scope, first)


def test_the_newest_available_backup_is_chosen_across_pages() -> None:
    day = "2026-01-0{}T00:00:00Z".format
    page1 = {
        "Items": [
            {"Id": "b1", "Status": "AVAILABLE", "Created": day(1)},
            {"Id": "b2", "Status": "CREATING", "Created": day(9)},  # newest, not usable yet
            {"Id": "b3", "Status": "AVAILABLE", "Created": day(3)},
        ],
        "Next": "b3",
    }
    page2 = {
        "Items": [{"Id": "b4", "Status": "AVAILABLE", "Created": day(2)}, {"Id": "b5", "Status": "AVAILABLE"}]
    }
    copied = {  # an RDS copy keeps the time its data was captured: the original time wins
        "Items": [
            {"Id": "c1", "Status": "AVAILABLE", "Original": day(1), "Created": day(8)},
            {"Id": "c2", "Status": "AVAILABLE", "Created": day(4)},
        ]
    }
    # One execution per emulator: moto cannot start a second one after the first has run.
    with mock_aws(config=SFN):
        chosen = execute(_newest_machine(("Created",), [page1, page2], "Items"), table=None, fresh=True)
    assert chosen["status"] == "SUCCEEDED", chosen.get("cause")
    assert json.loads(chosen["output"])["Id"] == "b3"
    with mock_aws(config=SFN):
        chosen = execute(_newest_machine(("Original", "Created"), [copied], "Items"), table=None, fresh=True)
    assert json.loads(chosen["output"])["Id"] == "c2"
    with mock_aws(config=SFN):
        none = execute(
            _newest_machine(("Created",), [{"Items": [page1["Items"][1]]}], "Items"), table=None, fresh=True
        )
    assert (none["status"], none["error"], none["cause"]) == ("FAILED", "drplan.StepFailed", "no backups")


@pytest.mark.slow
def test_recover_of_an_n_shaped_plan_matches_the_local_recover() -> None:
    data = n_shape()
    tables = ("orders", "carts", "users", "stock")
    with mock_aws():
        seed(tables)
        local = run_plan(data, run_id=RUN_ID)
        assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
        expected = aws_state()
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert exported.shape.coordinated == ("a.restore", "b.restore", "c.restore", "d.restore")
    with mock_aws(config=SFN):
        seed(tables)
        described = execute(exported.definition, table=exported.coordination_table)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == {k: "succeeded" for k in exported.sids}
    out = doc["steps"][exported.sids["c.restore"]]["out"]
    assert out["table_name"] == "users-restored" and out["table_arn"].endswith(":table/users-restored")
    # c started only after both a and b had published their records; d never waited for a.
    entered = _entered(described["history"])
    assert entered["c.restore restore table"] > max(
        entered["a.restore publish (s)"], entered["b.restore publish (s)"]
    )
    assert "d.restore wait for a.restore (s)" not in entered


def _entered(history: list[dict[str, Any]]) -> dict[str, int]:
    """State name -> id of the event where it was last entered."""
    out = {}
    for event in history:
        details = event.get("stateEnteredEventDetails")
        if details:
            out[details["name"]] = event["id"]
    return out


@pytest.mark.slow
def test_recover_of_rds_dynamodb_and_route53_matches_the_local_recover() -> None:
    tables = ("shop-carts",)
    with mock_aws():
        zone = seed(tables, rds=True, zone=True)
        data = with_zone(shop(), zone)
        local = run_plan(data, run_id=RUN_ID)
        assert {k: r.status for k, r in local.outcome.records.items()} == {
            "orders-db.restore": "succeeded",
            "orders-db.settle": "succeeded",
            "carts.restore": "succeeded",
            "web.dns": "succeeded",
        }, {k: r.error for k, r in local.outcome.records.items()}
        expected = aws_state()
        local_outputs = {k: r.outputs for k, r in local.outcome.records.items()}
    with mock_aws(config=SFN):
        # The emulator gives the zone another id: the plan names the zone of this AWS.
        exported = export_plan(
            build_plan(with_zone(shop(), seed(tables, rds=True, zone=True))),
            "recover",
            options=FAST,
            history_budget=ONE_MACHINE,
        )
        assert exported.coordination_table is None  # series-parallel: no coordination at all
        described = execute(exported.definition, table=None)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
    doc = records(described)
    dns = doc["steps"][exported.sids["web.dns"]]["out"]
    assert dns["fqdn"] == local_outputs["web.dns"]["fqdn"] == "orders-db.internal.shop.example.com"
    db = doc["steps"][exported.sids["orders-db.restore"]]["out"]
    assert {k: db[k] for k in ("endpoint", "port", "instance_id", "snapshot_id")} == {
        k: local_outputs["orders-db.restore"][k] for k in ("endpoint", "port", "instance_id", "snapshot_id")
    }


@pytest.mark.slow
def test_a_failed_step_skips_its_dependents_and_independent_branches_finish() -> None:
    """Also: a failed step is retried (its attempt undone first), and a timeout covers the step."""
    data = plan_data(
        {
            "broken": {"steps": [restore("restore", "no-such-table", "broken-restored", retries=1)]},
            "needs-broken": {
                "depends_on": ["broken"],
                "steps": [
                    restore("restore", "carts", "carts-restored"),
                    {"id": "after", "uses": "wait", "with": {"duration": "PT1S"}},
                ],
            },
            "independent": {"steps": [restore("restore", "users", "users-restored")]},
            "slow": {
                "steps": [{"id": "settle", "uses": "wait", "with": {"duration": "PT5S"}, "timeout": "PT1S"}]
            },
        },
        name="failing",
    )
    tables = ("carts", "users")
    with mock_aws():
        seed(tables)
        local = run_plan(data, run_id=RUN_ID)
        expected_status = {k: r.status for k, r in local.outcome.records.items()}
        expected = aws_state()
    assert expected_status == {
        "broken.restore": "failed",
        "needs-broken.restore": "skipped",
        "needs-broken.after": "skipped",
        "independent.restore": "succeeded",
        "slow.settle": "failed",
    }
    assert local.outcome.records["broken.restore"].attempts == 2
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed(tables)
        described = execute(exported.definition, table=exported.coordination_table)
        assert aws_state() == expected
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed"
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    broken = doc["steps"][exported.sids["broken.restore"]]
    assert (
        broken["cause"]
        == local.outcome.records["broken.restore"].error
        == "table no-such-table has no available backups"
    )
    skipped = doc["steps"][exported.sids["needs-broken.after"]]
    assert skipped["reason"] == "`broken.restore` did not succeed"
    timed_out = doc["steps"][exported.sids["slow.settle"]]
    assert timed_out["error"] == "drplan.Timeout"
    assert timed_out["cause"] == local.outcome.records["slow.settle"].error == "timed out after 1.0s"
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in described["history"] if "stateEnteredEventDetails" in e
    ]
    assert entered.count("broken.restore attempt") == 2  # retried once
    assert "broken.restore undo (before retrying)" in entered


@pytest.mark.slow
def test_a_drill_leaves_nothing_behind_even_when_a_step_fails() -> None:
    """The N-shaped drill with one source missing: every copy the drill made is removed, names and
    tags are drplan's own (same run id, same names as a local drill), the execution fails."""
    data = n_shape()
    data["services"]["d"]["steps"][0]["with"]["source_table"] = "missing"
    tables = ("orders", "carts", "users")
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=SFN):
        seed(tables)
        before = aws_state()
        described = execute(exported.definition, table=exported.coordination_table)
        after = aws_state()
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    assert after == before
    doc = records(described)
    assert statuses(doc, exported.sids) == {
        "a.restore": "succeeded",
        "b.restore": "succeeded",
        "c.restore": "succeeded",
        "d.restore": "failed",
    }
    names = {
        doc["steps"][exported.sids[k]]["out"]["table_name"] for k in ("a.restore", "b.restore", "c.restore")
    }
    assert names == {f"{t}-restored-drill-{RUN_ID}" for t in ("orders", "carts", "users")}
    with mock_aws():  # the local drill names its copies the same way
        seed(tables)
        local = run_plan(data, "drill", run_id=RUN_ID)
        assert {
            local.outcome.records[k].outputs["table_name"] for k in ("a.restore", "b.restore", "c.restore")
        } == names
    cleanup = doc["cleanup"]
    assert {cleanup[exported.sids[k]]["status"] for k in exported.sids} == {"removed"}


@pytest.mark.slow
def test_a_drill_of_rds_and_route53_cleans_up_its_dns_record_and_database() -> None:
    tables = ("shop-carts",)
    with mock_aws(config=SFN):
        zone = seed(tables, rds=True, zone=True)
        exported = export_plan(
            build_plan(with_zone(shop(), zone)), "drill", options=FAST, history_budget=ONE_MACHINE
        )
        before = aws_state()
        described = execute(exported.definition, table=None)
        after = aws_state()
    assert described["status"] == "SUCCEEDED", described.get("cause")
    doc = records(described)
    assert (
        doc["steps"][exported.sids["web.dns"]]["out"]["fqdn"]
        == f"orders-db-{RUN_ID}.internal.shop.example.com"
    )
    assert (
        doc["steps"][exported.sids["orders-db.restore"]]["out"]["instance_id"]
        == f"shop-orders-restored-drill-{RUN_ID}"
    )
    assert after == before


# --- the command -------------------------------------------------------------------------------------------


def test_the_command_writes_the_three_files_and_refuses_with_exit_1(tmp_path: Path) -> None:
    from drplan.cli.stepfunctions import COMMANDS

    (command,) = COMMANDS
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(n_shape()), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(command, ["stepfunctions", str(plan), "--mode", "drill", "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.iterdir())
    assert written == ["definition.asl.json", "policy.json", "template.json"]
    definition = json.loads((out / "definition.asl.json").read_text())
    assert lint_definition(definition) == []
    assert "coordination" in result.output  # the note about the N

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            plan_data(
                {
                    "web": {
                        "steps": [
                            {
                                "id": "restore",
                                "uses": "command",  # a program on the operator's machine: never translated
                                "with": {"run": ["true"]},
                            }
                        ]
                    }
                },
                allow_commands=True,
            )
        ),
        encoding="utf-8",
    )
    refused = CliRunner().invoke(command, ["stepfunctions", str(bad), "-o", str(tmp_path / "none")])
    assert refused.exit_code == 1
    assert "web.restore (command)" in refused.output
