"""Plans beyond one execution's quotas: the main state machine runs them as child executions, one
per part (drplan/stepfunctions/parts.py).

The split is decided by the same budgets a real export uses (1 MiB of definition, 20,000 of the
25,000 history events); to execute split plans in moto in seconds, these plans poll every second
(FAST), which makes each 5-minute restore's worst case (polling until its 20-minute timeout) about
15,700 events, and the executed tests give a part room for one or two such steps. The executions then
run the main machine and its parts in moto's interpreter, and the state of AWS, the records and the
report are compared with drplan's own local run of the same plan.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import networkx as nx
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.asl import Fork, Leaf, Series
from drplan.stepfunctions.export import ExportTooLarge
from drplan.stepfunctions.history import child_executions
from drplan.stepfunctions.parts import TooLargeForOnePart, split
from tests.moto_child_executions import create_machines as create_exported
from tests.moto_child_executions import moto_starts_child_executions
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    REGION,
    RUN_ID,
    SFN,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    aws_state,
    lint_definition,
    lint_template,
    records,
    restore,
    seed,
    statuses,
)

#: With FAST, one 5-minute restore (20-minute timeout, a poll a second) could write ~15,700 events,
#: ~17,300 in a drill (its undo verifies the deletion for up to 2 minutes): a part of these budgets
#: holds two.
TWO_RESTORES = 32_000
TWO_DRILL_RESTORES = 35_000


@pytest.fixture(autouse=True)
def _moto_starts_child_executions() -> Iterator[None]:
    """moto's interpreter is given what Step Functions does for startExecution.sync:2
    (tests/moto_child_executions.py says what it lacks)."""
    with moto_starts_child_executions():
        yield


# --- the split --------------------------------------------------------------------------------------------


def test_independent_components_stay_whole_and_a_long_chain_is_sliced_in_order() -> None:
    graph = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("c", "e"), ("x", "y")])
    graph.add_node("z")
    order = {k: i for i, k in enumerate(["a", "b", "c", "d", "e", "x", "y", "z"])}
    sizes = dict.fromkeys(order, 100)
    events = dict.fromkeys(order, 1_000)
    chosen = split(graph, order, sizes, events, size_budget=250, event_budget=10_000)
    by_name = {p.name: p.keys for p in chosen.parts}
    # x->y and z fit together (whole components side by side); the chain of five does not fit in
    # 250 bytes: slices of two, in topological order, each after the one before.
    assert by_name == {
        "part-1": ("x", "y"),
        "part-2": ("z",),
        "part-3": ("a", "b"),
        "part-4": ("c", "d"),
        "part-5": ("e",),
    }
    assert chosen.tree == Fork(
        (Leaf("part-1"), Leaf("part-2"), Series((Leaf("part-3"), Leaf("part-4"), Leaf("part-5"))))
    )
    assert chosen.sliced == ("a", "b", "c", "d", "e")
    # Every step in exactly one part; no edge goes from a later slice back to an earlier one.
    placed = [k for p in chosen.parts for k in p.keys]
    assert sorted(placed) == sorted(order)
    part_of = {k: p.number for p in chosen.parts for k in p.keys}
    assert all(part_of[u] <= part_of[v] for u, v in graph.edges)
    # The history budget splits too: 11 steps of 1,000 events, 10,000 a part.
    wide = nx.DiGraph()
    wide.add_nodes_from(str(i) for i in range(11))
    many = split(
        wide,
        {str(i): i for i in range(11)},
        dict.fromkeys(wide, 1),
        dict.fromkeys(wide, 1_000),
        event_budget=10_000,
    )
    assert [len(p.keys) for p in many.parts] == [10, 1]
    assert isinstance(many.tree, Fork)


def test_one_step_over_a_part_is_refused_with_what_to_change() -> None:
    graph = nx.DiGraph()
    graph.add_node("slow")
    with pytest.raises(TooLargeForOnePart, match=r"could write 30000 history events .* shorten its timeout"):
        split(graph, {"slow": 0}, {"slow": 10}, {"slow": 30_000})
    # Through the export: a restore polled every second for a day.
    data = plan_data({"db": {"steps": [restore("restore", "orders", "copy", timeout="PT24H")]}}, name="slow")
    with pytest.raises(ExportTooLarge, match=r"db.restore alone could write .* history events"):
        export_plan(build_plan(data), "recover", options=FAST)


def test_the_worst_case_history_of_a_step_counts_its_polls_until_its_timeout() -> None:
    data = plan_data({"db": {"steps": [restore("restore", "orders", "copy")]}}, name="one")
    exported = export_plan(build_plan(data), "recover")  # default polling: up to 20 s for 5 minutes
    assert exported.parts == {}  # one restore fits one execution
    from drplan.actions import registry
    from drplan.engine.prepare import prepare

    prepared = prepare(build_plan(data), "recover", registry(), run_id="x")
    step = prepared.steps["db.restore"]
    assert step.timeout.total_seconds() == 1200  # 4 x the 5-minute estimate
    fast = export_plan(build_plan(data), "recover", options=FAST, history_budget=10**9)
    assert fast.parts == {}
    # FAST polls every second: 1,200 polls of 13 events, and the step's own 75.
    from drplan.stepfunctions.builder import Values
    from drplan.stepfunctions.tasks import StepInfo

    info = StepInfo(
        key="db.restore", sid="s0", step=step.step, params=step.params, mode="recover",
        values=Values({}), tags={}, estimate=300.0, timeout=1200.0, options=FAST,
    )  # fmt: skip
    from drplan.stepfunctions.translations import TRANSLATIONS

    assert TRANSLATIONS["aws.rds.restore_snapshot"].history_events(info) == 75 + 13 * 1200


def test_a_plan_over_one_definition_exports_as_parts_that_lint() -> None:
    """80 DynamoDB restores in a drill are about 1.2 MiB of definition in one machine (refused before
    child executions): now a main machine and parts, each well under 1 MiB, every definition valid
    for statelint, the template for cfn-lint, the role allowed to start and follow the parts."""
    services = {
        f"s{i}": {"steps": [restore("restore", f"table{i}", f"table{i}-restored")]} for i in range(80)
    }
    exported = export_plan(build_plan(plan_data(services, name="big")), "drill")
    assert len(exported.parts) >= 2
    sizes = {name: len(json.dumps(d, separators=(",", ":"))) for name, d in exported.parts.items()}
    assert max(sizes.values()) < 1024 * 1024 and exported.size() < 1024 * 1024
    assert exported.shape.split is not None
    placed = sorted(k for p in exported.shape.split.parts for k in p.keys)
    assert placed == sorted(f"s{i}.restore" for i in range(80))
    assert exported.shape.split.sliced == ()  # 80 independent services: nothing waits for more than before
    for definition in [exported.definition, *exported.parts.values()]:
        assert lint_definition(definition) == []
    names = [name for name, _ in exported.files()]
    assert names[:3] == ["definition.asl.json", "part-1.asl.json", "part-2.asl.json"]
    assert any("runs as" in n and "child executions" in n for n in exported.notes), exported.notes
    sids = {s["Sid"]: s for s in exported.policy["Statement"]}
    assert sids["ChildExecutions"]["Resource"].endswith(":stateMachine:drplan-big-drill-part-*")
    assert sids["ChildExecutionsFollow"]["Action"] == ["states:DescribeExecution", "states:StopExecution"]
    assert lint_template(exported.template) == []
    machines = [
        r for r in exported.template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    assert len(machines) == 1 + len(exported.parts)


# --- executed ------------------------------------------------------------------------------------------------


def split_plan(missing: str | None = None) -> dict[str, Any]:
    """a->c, b->c, b->d (an N, no nesting of Parallel states expresses it) and an independent x->y:
    with room for two restores a part, x->y is one part and the N is sliced in two."""

    def step(source: str, target: str) -> dict[str, Any]:
        return restore("restore", "missing" if source == missing else source, target)

    return plan_data(
        {
            "a": {"steps": [step("orders", "orders-restored")]},
            "b": {"steps": [step("carts", "carts-restored")]},
            "c": {"depends_on": ["a", "b"], "steps": [step("users", "users-restored")]},
            "d": {"depends_on": ["b"], "steps": [step("stock", "stock-restored")]},
            "x": {"steps": [step("prices", "prices-restored")]},
            "y": {"depends_on": ["x"], "steps": [step("tax", "tax-restored")]},
        },
        name="split",
    )


TABLES = ("orders", "carts", "users", "stock", "prices", "tax")


def create_machines(exported: Any, name: str) -> str:
    """The main machine and its parts, and the coordination table, as the template creates them."""
    if exported.coordination_table:
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName=exported.coordination_table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    sfn = boto3.client("stepfunctions", region_name=REGION)
    return str(create_exported(sfn, exported, name)["stateMachineArn"])


def run_split(exported: Any, name: str = "drplan-split") -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = create_machines(exported, name)
    execution = sfn.start_execution(
        stateMachineArn=arn,
        name=RUN_ID,
        input=json.dumps({"run_id": RUN_ID, "created": "2026-01-01T00:00:00Z"}),
    )["executionArn"]
    started = time.monotonic()
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() - started < 240, "the execution did not end in time"
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
    described["children"] = child_executions(history)
    return described


@pytest.mark.slow
def test_a_split_recovery_leaves_aws_as_the_local_recover_does() -> None:
    data = split_plan()
    with mock_aws():
        seed(TABLES)
        local = run_plan(data, run_id=RUN_ID)
        assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
        expected = aws_state()
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=TWO_RESTORES)
    assert exported.shape.split is not None
    assert {p.name: p.keys for p in exported.shape.split.parts} == {
        "part-1": ("x.restore", "y.restore"),
        "part-2": ("a.restore", "b.restore"),
        "part-3": ("c.restore", "d.restore"),
    }
    with mock_aws(config=SFN):
        seed(TABLES)
        described = run_split(exported)
        assert described["status"] == "SUCCEEDED", described.get("cause")
        assert aws_state() == expected
    doc = records(described)
    assert statuses(doc, exported.sids) == {k: "succeeded" for k in exported.sids}
    assert doc["steps"][exported.sids["c.restore"]]["out"]["table_name"] == "users-restored"
    # One child execution per part, named after the run and the part.
    assert sorted(arn.rsplit(":", 2)[1:] for arn in described["children"]) == [
        ["drplan-split-part-1", f"{RUN_ID}-part-1-steps"],
        ["drplan-split-part-2", f"{RUN_ID}-part-2-steps"],
        ["drplan-split-part-3", f"{RUN_ID}-part-3-steps"],
    ]


@pytest.mark.slow
def test_a_failure_in_one_part_skips_its_dependents_in_the_next() -> None:
    """a's source is missing: a fails in part 2, c (part 3) is skipped with a as the root cause, d
    (part 3, after b only) and the independent x->y still run: the local run's outcome exactly."""
    data = split_plan(missing="orders")
    tables = tuple(t for t in TABLES if t != "orders")
    with mock_aws():
        seed(tables)
        local = run_plan(data, run_id=RUN_ID)
        expected = aws_state()
    local_statuses = {k: r.status for k, r in local.outcome.records.items()}
    assert local_statuses["a.restore"] == "failed" and local_statuses["c.restore"] == "skipped"
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=TWO_RESTORES)
    with mock_aws(config=SFN):
        seed(tables)
        described = run_split(exported)
        assert aws_state() == expected
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    doc = records(described)
    assert statuses(doc, exported.sids) == local_statuses
    assert doc["steps"][exported.sids["c.restore"]]["root"] == "a.restore"


@pytest.mark.slow
def test_a_split_drill_leaves_nothing_behind() -> None:
    """Each part cleans up its own steps, the last slice first, also after a failure."""
    data = split_plan(missing="stock")
    tables = tuple(t for t in TABLES if t != "stock")
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=TWO_DRILL_RESTORES)
    assert exported.shape.split is not None and len(exported.parts) == 3
    with mock_aws(config=SFN):
        seed(tables)
        before = aws_state()
        described = run_split(exported, "drplan-split-drill")
        after = aws_state()
    assert after == before
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    doc = records(described)
    assert statuses(doc, exported.sids)["d.restore"] == "failed"
    removed = {
        key for key, sid in exported.sids.items() if doc["cleanup"].get(sid, {}).get("status") == "removed"
    }
    # Every step that started is undone, d's failed restore too (as in one machine: it may have
    # left a table behind).
    assert removed == set(exported.sids)
    names = [arn.rsplit(":", 1)[1] for arn in described["children"]]
    cleanup = [n.removeprefix(f"{RUN_ID}-").removesuffix("-cleanup") for n in names if n.endswith("-cleanup")]
    assert sorted(cleanup) == ["part-1", "part-2", "part-3"]
    # The N's slices are cleaned up in reverse: part 3 (dependents) before part 2.
    assert cleanup.index("part-3") < cleanup.index("part-2")


@pytest.mark.slow
def test_drplan_start_follows_the_parts_and_reports_every_step(tmp_path: Path) -> None:
    """The follower reads the main execution's history and each child's: the journal, the live
    events and the report hold every step, with the times and records of the part that ran it."""
    from drplan.engine.events import Event
    from drplan.stepfunctions.follow import Follower

    data = split_plan()
    plan = build_plan(data)
    exported = export_plan(plan, "drill", options=FAST, history_budget=TWO_DRILL_RESTORES)
    seen: list[tuple[str, str | None]] = []

    def events(event: Event) -> None:
        seen.append((event.kind, event.step))

    with mock_aws(config=SFN):
        seed(TABLES)
        before = aws_state()
        arn = create_machines(exported, "drplan-split-follow")
        sfn = boto3.client("stepfunctions", region_name=REGION)
        execution = sfn.start_execution(
            stateMachineArn=arn,
            name=RUN_ID,
            input=json.dumps({"run_id": RUN_ID, "created": "2026-01-01T00:00:00Z"}),
        )["executionArn"]
        follower = Follower(sfn, plan, execution, tmp_path / "state", [events])
        followed = follower.follow(interval=0.2)
        after = aws_state()
    assert after == before
    assert followed.status == "SUCCEEDED" and followed.exit_code == 0
    outcome = followed.result.outcome
    assert {k: r.status for k, r in outcome.records.items()} == dict.fromkeys(exported.sids, "succeeded")
    assert all(r.undone for r in outcome.records.values())
    starts = [step for kind, step in seen if kind == "step.started"]
    assert sorted(starts) == sorted(exported.sids)
    assert [kind for kind, _ in seen].count("run.started") == 1  # the parts' starts are not the run's
    report = json.loads((followed.evidence_dir / "report.json").read_text(encoding="utf-8"))
    steps = {s["key"]: s for s in report["steps"]}
    assert set(steps) == set(exported.sids)
    # c ran after a and b ended (a later slice); y after x (same part).
    assert steps["c.restore"]["started"] >= max(
        steps["a.restore"]["finished"], steps["b.restore"]["finished"]
    )
    assert steps["y.restore"]["started"] >= steps["x.restore"]["finished"]
    assert report["cleanup"]["status"] == "complete"
    # The executions that ran the parts, for the audit: each part's steps, then its cleanup.
    ran = [arn.rsplit(":", 1)[1].removeprefix(f"{RUN_ID}-") for arn in report["engine"]["child_executions"]]
    assert sorted(ran) == sorted(f"part-{n}-{phase}" for n in (1, 2, 3) for phase in ("steps", "cleanup"))


def test_deploy_of_a_split_plan_uploads_every_definition_and_names_them_in_the_stack(tmp_path: Path) -> None:
    """40 restores could write more history than one execution holds: the stack deploys the main
    machine and its parts, their definitions read from S3 (together they are over CloudFormation's
    1 MB template limit long before any is over 1 MiB)."""
    from click.testing import CliRunner

    from drplan.cli.sfn import deploy
    from drplan.errors import UsageError

    services = {
        f"s{i}": {"steps": [restore("restore", f"table{i}", f"table{i}-restored")]} for i in range(40)
    }
    plan = tmp_path / "wide.json"
    plan.write_text(json.dumps(plan_data(services, name="wide")), encoding="utf-8")
    exported = export_plan(build_plan(plan_data(services, name="wide")), "recover")
    assert len(exported.parts) == 2
    assert lint_template(exported.template) == []
    args = [str(plan), "--mode", "recover", "--stack-name", "wide"]
    with mock_aws():
        refused = CliRunner().invoke(deploy, args)
        assert isinstance(refused.exception, UsageError) and "deployed from S3" in str(refused.exception)
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="templates")
        result = CliRunner().invoke(deploy, [*args, "--s3-bucket", "templates"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        keys = sorted(k["Key"] for k in s3.list_objects_v2(Bucket="templates")["Contents"])
        definitions = [k for k in keys if "/definitions-" in k]
        assert [k.rsplit("/", 1)[1] for k in definitions] == [
            "definition.asl.json",
            "part-1.asl.json",
            "part-2.asl.json",
        ]
        uploaded = s3.get_object(Bucket="templates", Key=definitions[1])["Body"].read()
        assert json.loads(uploaded) == exported.parts["part-1"]
        cfn = boto3.client("cloudformation", region_name=REGION)
        (stack,) = cfn.describe_stacks(StackName="wide")["Stacks"]
        given = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
        assert given["DefinitionsBucket"] == "templates"
        assert given["DefinitionsPrefix"] == definitions[0].rsplit("/", 1)[0] + "/"
        resources = cfn.describe_stack_resources(StackName="wide")["StackResources"]
        machines = sorted(
            r["LogicalResourceId"]
            for r in resources
            if r["ResourceType"] == "AWS::StepFunctions::StateMachine"
        )
        assert machines == ["StateMachine", "StateMachinePart1", "StateMachinePart2"]


def test_the_largest_plan_that_exports_and_the_first_that_does_not() -> None:
    """The records of every step travel in the main execution's state (256 KiB), twice (the
    verdict's copy, a part's input beside its output): with these names, 319 restores in a
    recovery export (as parts, each definition under 1 MiB) and 320 are refused with the reason.
    The estimate is above what the records really take: each step's record as the executed tests
    see it (a DynamoDB restore's table name, ARN and backup ARN under its state name), twice."""
    from drplan.stepfunctions.parts import DEFINITION_LIMIT, STATE_LIMIT, state_bytes

    def plan(n: int) -> Any:
        services = {
            f"s{i}": {"steps": [restore("restore", f"table{i}", f"table{i}-restored")]} for i in range(n)
        }
        return build_plan(plan_data(services, name="largest"))

    exported = export_plan(plan(319), "recover")
    assert exported.shape.split is not None and len(exported.parts) > 10
    assert exported.size() < DEFINITION_LIMIT
    assert all(len(json.dumps(d, separators=(",", ":"))) < DEFINITION_LIMIT for d in exported.parts.values())
    with pytest.raises(ExportTooLarge, match=r"records of its 320 steps would take about \d+ KiB .* 256 KiB"):
        export_plan(plan(320), "recover")
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table"
    records = {
        sid: {
            "status": "succeeded",
            "out": {
                "table_name": f"table{i}-restored",
                "table_arn": f"{arn}/table{i}-restored",
                "backup_arn": f"{arn}/table{i}/backup/01796194398803-ee69a3b3",
            },
            "root": key,
        }
        for i, (key, sid) in enumerate(exported.sids.items())
    }
    state = {"run": {"id": RUN_ID}, "s": records, "verdict": {"steps": records}}
    real = len(json.dumps(state, separators=(",", ":")))
    assert real < STATE_LIMIT
    assert real <= state_bytes(exported.sids, undone=False) <= 1.3 * real


def test_steps_that_do_not_poll_are_not_charged_for_polls() -> None:
    """A manual approval that may wait three days writes a few events, not one per second of it."""
    from tests.test_sfn_approve import gated

    exported = export_plan(build_plan(gated(timeout="P3D")), "recover")
    assert exported.parts == {}


def test_a_part_built_over_1_mib_is_split_again() -> None:
    """A mesh of N-shapes (6 wide, 20 deep) is coordinated inside its parts; the size estimate does
    not count the coordination's polling states, so the first parts come out too large and are
    split again with a smaller budget."""
    services: dict[str, Any] = {}
    for layer in range(20):
        for i in range(6):
            before = [f"l{layer - 1}x{i}", f"l{layer - 1}x{(i + 1) % 6}"] if layer else []
            services[f"l{layer}x{i}"] = {
                "depends_on": before,
                "steps": [restore("restore", f"table{layer}x{i}", f"table{layer}x{i}-restored")],
            }
    exported = export_plan(build_plan(plan_data(services, name="mesh")), "drill", history_budget=10**9)
    assert exported.shape.split is not None and exported.shape.coordinated
    sizes = [len(json.dumps(d, separators=(",", ":"))) for d in exported.parts.values()]
    assert max(sizes) <= 1024 * 1024


@pytest.mark.slow
def test_drplan_approve_answers_a_manual_step_that_waits_in_a_part() -> None:
    """The manual step runs in a child execution: the approval is found in that child's history
    (from the main execution's ARN, which is what drplan approve is given), answered, and the run
    carries on to the end."""
    from drplan.stepfunctions.approve import answer, approvals
    from tests.test_sfn_approve import gated, wait_until_ended

    # Waits and approvals do not poll: 75 events each at most, so parts of 100 hold one step.
    exported = export_plan(build_plan(gated()), "recover", options=FAST, history_budget=100)
    assert exported.shape.split is not None
    (part,) = [p for p in exported.shape.split.parts if "gate.approve" in p.keys]
    assert part.keys == ("gate.approve",)  # a slice of its own, after db.settle's
    with mock_aws(config=SFN):
        boto3.client("sns", region_name=REGION).create_topic(Name=str(exported.approvals_topic))
        arn = create_machines(exported, "drplan-gated-recover")
        sfn = boto3.client("stepfunctions", region_name=REGION)
        execution = sfn.start_execution(
            stateMachineArn=arn,
            name=RUN_ID,
            input=json.dumps({"run_id": RUN_ID, "created": "2026-01-01T00:00:00Z"}),
        )["executionArn"]
        started = time.monotonic()
        while "gate.approve" not in approvals(sfn, execution)[1]:
            assert time.monotonic() - started < 60, "the manual step never asked for approval"
            time.sleep(0.2)
        manual, waiting = approvals(sfn, execution)
        assert manual == ["gate.approve"] and not waiting["gate.approve"].answered
        answered = answer(sfn, execution, "gate.approve", by="jane@laptop")
        assert answered.verdict == "approved"
        described = wait_until_ended(sfn, execution)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    doc = records(described)
    assert statuses(doc, exported.sids) == dict.fromkeys(exported.sids, "succeeded")
    assert doc["steps"][exported.sids["gate.approve"]]["out"]["approved_by"] == "jane@laptop"


# --- a recovery's rollback (--rollback-on-failure) ------------------------------------------------------


def rollback_plan() -> dict[str, Any]:
    """a and b restore; c (after a) fails, its source missing; d (after c) is skipped."""
    return plan_data(
        {
            "a": {"steps": [restore("restore", "orders", "orders-restored")]},
            "b": {"steps": [restore("restore", "carts", "carts-restored")]},
            "c": {"depends_on": ["a"], "steps": [restore("restore", "missing", "users-restored")]},
            "d": {"depends_on": ["c"], "steps": [restore("restore", "stock", "stock-restored")]},
        },
        name="rollback",
    )


@pytest.mark.slow
@pytest.mark.parametrize("budget", [10**9, TWO_RESTORES], ids=["one machine", "parts"])
def test_a_failed_recovery_rolls_back_as_the_local_rollback_does(budget: int) -> None:
    data = rollback_plan()
    tables = ("orders", "carts", "stock")
    with mock_aws():
        seed(tables)
        before = aws_state()
        local = run_plan(data, run_id=RUN_ID)
        assert local.runner.rollback() == []
        expected = aws_state()
    assert expected == before  # the local rollback removed what a and b restored
    local_statuses = {k: r.status for k, r in local.outcome.records.items()}
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=budget, rollback_on_failure=True
    )
    assert (exported.shape.split is not None) == (budget == TWO_RESTORES)
    assert any("--rollback-on-failure" in n for n in exported.notes)
    with mock_aws(config=SFN):
        seed(tables)
        described = run_split(exported, "drplan-rollback")
        after = aws_state()
    assert after == expected
    assert described["status"] == "FAILED" and described["error"] == "drplan.StepFailed", described.get(
        "cause"
    )
    doc = records(described)
    assert statuses(doc, exported.sids) == local_statuses
    rolled = {k: doc["cleanup"][sid]["status"] for k, sid in exported.sids.items()}
    assert rolled == {
        "a.restore": "removed",
        "b.restore": "removed",
        "c.restore": "nothing to undo",
        "d.restore": "nothing to undo",
    }


@pytest.mark.slow
def test_a_recovery_that_succeeds_does_not_roll_back() -> None:
    data = rollback_plan()
    data["services"]["c"]["steps"][0]["with"]["source_table"] = "users"
    exported = export_plan(
        build_plan(data), "recover", options=FAST, history_budget=10**9, rollback_on_failure=True
    )
    with mock_aws(config=SFN):
        seed(("orders", "carts", "users", "stock"))
        described = run_split(exported, "drplan-no-rollback")
        tables = boto3.client("dynamodb", region_name=REGION).list_tables()["TableNames"]
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert records(described)["cleanup"] == {}
    assert {"orders-restored", "carts-restored", "users-restored", "stock-restored"} <= set(tables)


def test_rollback_is_for_recoveries(tmp_path: Path) -> None:
    """Every translated action's undo is what the local rollback does; a drill cleans up anyway,
    so the option is refused for it (exit 2, nothing written)."""
    from click.testing import CliRunner

    from drplan.cli.stepfunctions import stepfunctions

    assert export_plan(build_plan(rollback_plan()), "recover").rollback is False
    assert export_plan(build_plan(rollback_plan()), "recover", rollback_on_failure=True).rollback is True
    assert export_plan(build_plan(rollback_plan()), "drill", rollback_on_failure=True).rollback is False
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(rollback_plan()), encoding="utf-8")
    drill = CliRunner().invoke(
        stepfunctions, [str(plan), "--mode", "drill", "-o", str(tmp_path / "out"), "--rollback-on-failure"]
    )
    assert drill.exit_code == 2 and "--rollback-on-failure is for recoveries" in drill.output
    assert not (tmp_path / "out").exists()


def test_drplan_start_refuses_a_version_of_a_machine_that_starts_parts(tmp_path: Path) -> None:
    """The main machine finds its parts by its own ARN with -part-N after it: a version's or an
    alias's ARN would name no part, so drplan start refuses it before starting anything."""
    from click.testing import CliRunner

    from drplan.cli.sfn import start

    data = split_plan()
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(data), encoding="utf-8")
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=TWO_RESTORES)
    with mock_aws(config=SFN):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        created = create_exported(sfn, exported, "drplan-split", publish=True)
        version = created["stateMachineVersionArn"]
        result = CliRunner().invoke(
            start, [str(plan), "--engine", "stepfunctions", "--state-machine", version, "--yes"]
        )
        executions = sfn.list_executions(stateMachineArn=created["stateMachineArn"])["executions"]
    assert result.exit_code == 2, result.output
    assert "is a version or alias" in result.output
    assert executions == []


@pytest.mark.slow
def test_stopping_a_split_run_stops_the_parts_still_running(tmp_path: Path) -> None:
    """drplan start --stop-on-interrupt stops the main execution and the parts it is waiting for."""
    from drplan.stepfunctions.follow import Follower

    slow = {"id": "w", "uses": "wait", "with": {"duration": "PT60S"}}
    data = plan_data({f"w{i}": {"steps": [slow]} for i in range(2)}, name="slow")
    plan = build_plan(data)
    exported = export_plan(plan, "recover", options=FAST, history_budget=100)
    assert len(exported.parts) == 2
    with mock_aws(config=SFN):
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arn = create_machines(exported, "drplan-slow")
        given = {"run_id": RUN_ID, "created": "2026-01-01T00:00:00Z"}
        execution = sfn.start_execution(stateMachineArn=arn, name=RUN_ID, input=json.dumps(given))[
            "executionArn"
        ]
        follower = Follower(sfn, plan, execution, tmp_path / "state")
        started = time.monotonic()
        while len(follower.children) < 2:
            assert time.monotonic() - started < 30, "the parts never started"
            follower.poll()
            time.sleep(0.2)
        sfn.stop_execution(executionArn=execution, error="drplan.Interrupted", cause="test")
        assert follower.stop_children("test") == []
        stopped = time.monotonic()
        while True:  # moto marks a stopped execution ABORTED a moment after StopExecution returns
            children = {arn: sfn.describe_execution(executionArn=arn)["status"] for arn in follower.children}
            if set(children.values()) != {"RUNNING"} and "RUNNING" not in children.values():
                break
            assert time.monotonic() - stopped < 10, children
            time.sleep(0.2)
    assert set(children.values()) == {"ABORTED"}, children


def dns_plan(zone_id: str) -> dict[str, Any]:
    """Two DNS changes, one over a record that exists and one new; then a restore that fails."""

    def dns(step: str, name: str) -> dict[str, Any]:
        return {
            "id": step,
            "uses": "aws.route53.change_record",
            "with": {
                "zone_id": zone_id,
                "name": name,
                "type": "CNAME",
                "ttl": 60,
                "values": ["standby.example.com"],
            },
        }

    return plan_data(
        {
            "web": {"steps": [dns("dns", "api"), dns("fresh", "status")]},
            "db": {"depends_on": ["web"], "steps": [restore("restore", "missing", "orders-restored")]},
        },
        name="dns",
    )


def seed_record() -> str:
    zone_id = str(seed(zone=True))
    boto3.client("route53", region_name=REGION).change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": "api.internal.shop.example.com.",
                        "Type": "CNAME",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": "primary.example.com"}],
                    },
                }
            ]
        },
    )
    return zone_id


@pytest.mark.slow
def test_a_rollback_puts_back_the_dns_records_a_recovery_changed() -> None:
    """The record set each DNS step replaced is read before its first attempt and kept in its
    record: the rollback UPSERTs the one that existed and deletes the one that did not, as the
    local rollback does from its memo."""
    with mock_aws():
        zone_id = seed_record()
        before = aws_state()
        local = run_plan(dns_plan(zone_id), run_id=RUN_ID)
        assert local.outcome.records["web.dns"].status == "succeeded"
        assert local.runner.rollback() == []
        expected = aws_state()
    assert expected == before  # api back at primary.example.com, status. deleted
    with mock_aws(config=SFN):
        zone_id = seed_record()
        exported = export_plan(
            build_plan(dns_plan(zone_id)),
            "recover",
            options=FAST,
            history_budget=10**9,
            rollback_on_failure=True,
        )
        assert lint_definition(exported.definition) == []
        described = run_split(exported, "drplan-dns")
        after = aws_state()
    assert after == expected
    doc = records(described)
    assert doc["steps"][exported.sids["web.dns"]]["prev"]["rr"]["ResourceRecords"] == [
        {"Value": "primary.example.com"}
    ]
    assert doc["steps"][exported.sids["web.fresh"]]["prev"] == {"none": True}
    assert {k: doc["cleanup"][sid]["status"] for k, sid in exported.sids.items()} == {
        "web.dns": "removed",
        "web.fresh": "removed",
        "db.restore": "nothing to undo",
    }


def test_a_dns_change_with_retries_exports_in_a_recovery() -> None:
    """Retries put back the record set between attempts: read before the first attempt, outside
    them, so a failed attempt's undo has it (it used to be refused)."""
    data = dns_plan("Z123")
    data["services"]["web"]["steps"][0]["retries"] = 2
    exported = export_plan(build_plan(data), "recover")
    assert lint_definition(exported.definition) == []
    text = json.dumps(exported.definition)
    assert "web.dns before: list record sets" in text and "web.dns put back: change record" in text


def test_the_verdict_reads_no_undo_record_that_may_not_be_there() -> None:
    """Step Functions fails a Choice that compares a path the input does not have (moto lets it
    pass): a kept drill and a recovery that did not roll back write no undo records, so every rule
    on one is guarded by IsPresent."""

    def rules(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if node.get("Type") == "Choice":
                yield from node["Choices"]
            for value in node.values():
                yield from rules(value)
        elif isinstance(node, list):
            for value in node:
                yield from rules(value)

    def unguarded(rule: dict[str, Any], guarded: frozenset[str] = frozenset()) -> list[str]:
        if "And" in rule:
            present = {r["Variable"] for r in rule["And"] if r.get("IsPresent") is True}
            return [v for r in rule["And"] for v in unguarded(r, guarded | present)]
        for combined in ("Or",):
            if combined in rule:
                return [v for r in rule[combined] for v in unguarded(r, guarded)]
        if "Not" in rule:
            return unguarded(rule["Not"], guarded)
        variable = rule.get("Variable", "")
        if not variable.startswith("$.u.s") or "IsPresent" in rule:
            return []
        parent = variable.rsplit(".", 1)[0]
        return [] if parent in guarded or variable in guarded else [variable]

    for exported in (
        export_plan(build_plan(rollback_plan()), "drill"),
        export_plan(build_plan(rollback_plan()), "recover", rollback_on_failure=True),
    ):
        found = [v for rule in rules(exported.definition) for v in unguarded(rule)]
        assert found == [], found
