"""``drplan export arc-region-switch``: the CreatePlan request (checked by a stubbed botocore client),
the CloudFormation template (checked by cfn-lint), the report, and the cost of ARC's stages.

Golden files: tests/golden/arc_failover.{create-plan.json,template.json,report.md} are the export
of tests/fixtures/arc_failover.json with :data:`ARGS`. After a deliberate change, regenerate them
with ``DRPLAN_UPDATE_GOLDEN=1 python -m pytest tests/test_arc_export.py -k golden`` and review the
diff.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from drplan.arcswitch import InvalidRequest, NothingToExport, export_plan, settings
from drplan.arcswitch.request import problems
from drplan.arcswitch.structure import cost, makespan, restrict, stages
from drplan.cli import main
from drplan.errors import UsageError
from drplan.model import build_plan

HERE = Path(__file__).resolve().parent
PLAN = HERE / "fixtures" / "arc_failover.json"
GOLDEN = HERE / "golden"
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/arc-shop"
APPROVERS = f"arn:aws:iam::{ACCOUNT}:role/arc-approvers"
WORKERS_WEST = (
    f"arn:aws:autoscaling:us-west-2:{ACCOUNT}:autoScalingGroup:3f1c2a9e-7b4d-4c1e-9a2b-5d6e7f8a9b0c"
    ":autoScalingGroupName/shop-workers-west"
)
WORKERS_EAST = (
    f"arn:aws:autoscaling:us-east-1:{ACCOUNT}:autoScalingGroup:8a7b6c5d-4e3f-4a1b-9c8d-7e6f5a4b3c2d"
    ":autoScalingGroupName/shop-workers-east"
)
REQUIRED = [
    "--execution-role",
    ROLE,
    "--primary-region",
    "us-east-1",
    "--recovery-region",
    "us-west-2",
    "--recovery-approach",
    "activePassive",
]
#: The golden files' command line (after ``drplan export arc-region-switch PLAN -o DIR``).
ARGS = [
    *REQUIRED,
    "--approval-role",
    APPROVERS,
    "--arn",
    f"app.workers={WORKERS_WEST}",
    "--peer",
    f"app.workers={WORKERS_EAST}",
    "--peer",
    f"app.tasks=arn:aws:ecs:us-east-1:{ACCOUNT}:service/shop-east/storefront",
    "--peer",
    "app.warm=arn:aws:lambda:us-east-1:444455556666:function:shop-warm-caches",
    "--peer",
    f"db.promote=arn:aws:rds:us-east-1:{ACCOUNT}:db:orders",
]
FILES = ("create-plan.json", "template.json", "report.md")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``drplan ARGS`` through the CLI's one entry point: (exit code, standard error)."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    code = exited.value.code
    return (code if isinstance(code, int) else 0), capsys.readouterr().err


def export_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> Path:
    out = tmp_path / "arc"
    code, err = run(capsys, "export", "arc-region-switch", str(PLAN), "-o", str(out), *ARGS, *extra)
    assert code == 0, err
    return out


def the_settings(**changes: Any) -> Any:
    options: dict[str, Any] = {
        "execution_role": ROLE,
        "primary_region": "us-east-1",
        "recovery_region": "us-west-2",
        "approach": "activePassive",
        "approval_role": APPROVERS,
    }
    options.update(changes)
    return settings(**options)


def lambda_plan(edges: dict[str, list[str]], minutes: dict[str, int]) -> dict[str, Any]:
    """One service of Lambda custom actions ordered by ``after`` (each step lists what it waits for)."""
    return {
        "drplan": 1,
        "name": "shape",
        "aws": {"region": "us-west-2", "account_id": ACCOUNT},
        "services": {
            "svc": {
                "steps": [
                    {
                        "id": key,
                        "uses": "aws.lambda.invoke",
                        "with": {"function": f"fn-{key}"},
                        "estimate": f"PT{minutes[key]}M",
                        "after": edges.get(key, []),
                    }
                    for key in minutes
                ]
            }
        },
    }


# --- the golden export ------------------------------------------------------------------------------


def test_the_export_of_the_fixture_is_the_golden_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = export_fixture(tmp_path, capsys)
    for name in FILES:
        golden = GOLDEN / f"arc_failover.{name}"
        text = (out / name).read_text(encoding="utf-8")
        if os.environ.get("DRPLAN_UPDATE_GOLDEN"):
            golden.write_text(text, encoding="utf-8")
        assert text == golden.read_text(encoding="utf-8"), (
            f"{name} differs from {golden} (see this file's docstring)"
        )


def test_the_command_says_what_it_wrote_and_the_two_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "arc"
    code, err = run(capsys, "export", "arc-region-switch", str(PLAN), "-o", str(out), *ARGS)
    assert code == 0
    assert [line for line in err.splitlines() if line.startswith("wrote")] == [
        f"wrote {out / n}" for n in FILES
    ]
    assert "7 of 11 steps are ARC blocks, in 6 stage(s); 4 cannot run in ARC (see report.md)" in err
    assert "predicted: 27m in ARC's stages, 25m with drplan's scheduler" in err
    assert "failback workflow: 7 of 7 blocks" in err.splitlines()


def test_what_maps_and_what_does_not(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exported = export_plan(build_plan(json.loads(PLAN.read_text())), the_settings(**_peers()))
    assert {k: b.block_type for k, b in exported.blocks.items()} == {
        "gate.approve": "ManualApproval",
        "db.promote": "RdsPromoteReadReplica",
        "app.tasks": "ECSServiceScaling",
        "app.workers": "EC2AutoScaling",
        "app.warm": "CustomActionLambda",
        "edge.primary_off": "ARCRoutingControl",
        "edge.recovery_on": "ARCRoutingControl",
    }
    assert set(exported.unmapped) == {"db.reachable", "files.restore", "app.nodes", "edge.healthy"}
    assert "restores from a backup" in exported.unmapped["files.restore"]
    assert "not a managed node group" in exported.unmapped["app.nodes"]
    # The restore must end before traffic moves: the first ARC step that waits for it.
    assert exported.waiting["files.restore"] == ("edge.primary_off",)
    steps = exported.request["workflows"][0]["steps"]
    warm = next(s for s in steps if s["name"] == "app.warm")["executionBlockConfiguration"]
    lambdas = warm["customActionLambdaConfig"]["lambdas"]
    # A cross-account step: its role is ARC's crossAccountRole and its account is in the derived ARN.
    assert lambdas[0] == {
        "arn": "arn:aws:lambda:us-west-2:444455556666:function:shop-warm-caches",
        "crossAccountRole": "arn:aws:iam::444455556666:role/drplan-dr",
    }
    assert warm["customActionLambdaConfig"]["regionToRun"] == "activatingRegion"
    off = next(s for s in steps if s["name"] == "edge.primary_off")["executionBlockConfiguration"]
    states = {
        region: [c["state"] for c in controls]
        for region, controls in off["arcRoutingControlConfig"]["regionAndRoutingControls"].items()
    }
    # ARC sets the states listed under the Region a workflow activates: Off when the recovery
    # activates us-west-2, On again when the failback activates us-east-1.
    assert states == {"us-west-2": ["Off"], "us-east-1": ["On"]}


def _peers() -> dict[str, Any]:
    """The ``--peer`` and ``--arn`` values of :data:`ARGS`, as :func:`settings` takes them."""
    return {
        "peers": [ARGS[i + 1] for i, a in enumerate(ARGS) if a == "--peer"],
        "arns": [ARGS[i + 1] for i, a in enumerate(ARGS) if a == "--arn"],
    }


# --- validation against botocore's model (a stubbed client) and cfn-lint --------------------------------


def stubbed_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import botocore.session

    # Empty configuration and credentials files of the test's own (conftest points at os.devnull,
    # which processes on a shared machine have been seen to replace with a regular file).
    config = tmp_path / "aws-config"
    config.write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config))
    session = botocore.session.get_session()
    return session.create_client(
        "arc-region-switch",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def created(request: dict[str, Any]) -> dict[str, Any]:
    """CreatePlan's answer, in the shape AWS gives it (checked by the Stubber against the model)."""
    plan = {
        key: request[key]
        for key in (
            "name",
            "description",
            "workflows",
            "executionRole",
            "regions",
            "recoveryApproach",
            "primaryRegion",
        )
        if key in request
    }
    plan.update(
        arn=f"arn:aws:arc-region-switch::{ACCOUNT}:plan/{request['name']}:a1b2c3",
        owner=ACCOUNT,
        version="1",
        updatedAt=datetime(2026, 12, 2, 3, 0, tzinfo=timezone.utc),
    )
    if "recoveryTimeObjectiveMinutes" in request:
        plan["recoveryTimeObjectiveMinutes"] = request["recoveryTimeObjectiveMinutes"]
    return {"plan": plan}


def test_the_request_passes_botocore_through_a_stubbed_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    request = json.loads((export_fixture(tmp_path, capsys) / "create-plan.json").read_text())
    client = stubbed_client(tmp_path, monkeypatch)
    with Stubber(client) as stubber:
        stubber.add_response("create_plan", created(request), expected_params=request)
        answer = client.create_plan(**request)
        stubber.assert_no_pending_responses()
    assert answer["plan"]["arn"].endswith(":a1b2c3")
    assert problems(request) == []


def test_the_stubbed_client_and_the_model_check_catch_broken_requests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ParamValidationError
    from botocore.stub import Stubber

    request = json.loads((export_fixture(tmp_path, capsys) / "create-plan.json").read_text())
    broken = copy.deepcopy(request)
    del broken["executionRole"]
    broken["workflows"][0]["steps"][0]["executionBlockConfiguration"]["executionApprovalConfig"][
        "timeoutMinutes"
    ] = 0
    client = stubbed_client(tmp_path, monkeypatch)
    with Stubber(client) as stubber, pytest.raises(ParamValidationError, match="executionRole"):
        stubber.add_response("create_plan", created(request), expected_params=broken)
        client.create_plan(**broken)
    found = problems(broken)
    assert any("executionRole" in p for p in found) and any("timeoutMinutes" in p for p in found)
    # What botocore's client leaves to the service (patterns, enums) is checked too.
    bad = copy.deepcopy(request)
    bad["recoveryApproach"] = "activeSometimes"
    bad["regions"] = ["us-east-1", "US West"]
    assert problems(bad) == [
        "regions[1]: 'US West' does not match [a-z]{2}-[a-z-]+-\\d+",
        "recoveryApproach: 'activeSometimes' is not one of activeActive, activePassive",
    ]


def lint(template: dict[str, Any]) -> list[str]:
    from cfnlint.api import lint as cfn_lint

    return [str(m) for m in cfn_lint(json.dumps(template), regions=["us-east-1"])]


def test_the_template_passes_cfn_lint_and_cfn_lint_can_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    template = json.loads((export_fixture(tmp_path, capsys) / "template.json").read_text())
    assert template["Resources"]["Plan"]["Type"] == "AWS::ARCRegionSwitch::Plan"
    props = template["Resources"]["Plan"]["Properties"]
    # PascalCase properties, map keys (Regions, tags) as they are.
    assert props["RecoveryApproach"] == "activePassive" and props["Tags"] == {"drplan:plan": "shop-failover"}
    stage = props["Workflows"][0]["Steps"][2]
    assert stage["ExecutionBlockType"] == "Parallel"
    promote = props["Workflows"][0]["Steps"][1]["ExecutionBlockConfiguration"]["RdsPromoteReadReplicaConfig"]
    assert set(promote["DbInstanceArnMap"]) == {"us-east-1", "us-west-2"}
    assert lint(template) == []
    broken = copy.deepcopy(template)
    broken["Resources"]["Plan"]["Properties"]["RecoveryApproach"] = "activeSometimes"
    assert lint(broken)


# --- the structure and its cost ----------------------------------------------------------------------


ORDER = {k: i for i, k in enumerate("abcdefgh")}
MIN = 60.0


def test_an_n_costs_more_in_stages_than_with_drplans_scheduler() -> None:
    # a -> c, b -> c, b -> d: d waits only for b, but no stage structure lets it start before a ends.
    n = nx.DiGraph([("a", "c"), ("b", "c"), ("b", "d")])
    minutes = {"a": 10 * MIN, "b": 1 * MIN, "c": 1 * MIN, "d": 10 * MIN}
    m = makespan(n, minutes, ORDER)
    assert m.stages == (("a", "b"), ("c", "d"))
    # drplan: max(a + c, b + c, b + d) = max(11, 2, 11) = 11 minutes.
    assert m.drplan == m.critical == 11 * MIN
    # ARC: stage 1 = max(a, b) = 10, stage 2 = max(c, d) = 10: 20 minutes.
    assert m.arc == 20 * MIN and m.extra == 9 * MIN


def test_chains_side_by_side_cost_more_even_when_series_parallel() -> None:
    # x1 -> x2 beside y1 -> y2 (series-parallel, but ARC has no sequence inside a Parallel block).
    g = nx.DiGraph([("a", "b"), ("c", "d")])
    m = makespan(g, {"a": 10 * MIN, "b": 1 * MIN, "c": 1 * MIN, "d": 10 * MIN}, ORDER)
    assert (m.drplan, m.arc) == (11 * MIN, 20 * MIN)


def test_moving_steps_between_stages_finds_the_cheaper_structure() -> None:
    # a (1m) -> b (10m), and c (10m) alone: earliest stages give {a, c}, {b} = 20m; c beside b gives 11m.
    g = nx.DiGraph([("a", "b")])
    g.add_node("c")
    minutes = {"a": 1 * MIN, "b": 10 * MIN, "c": 10 * MIN}
    assert cost((("a", "c"), ("b",)), minutes) == 20 * MIN
    assert stages(g, minutes, ORDER) == (("a",), ("b", "c"))
    assert makespan(g, minutes, ORDER).arc == 11 * MIN


def test_a_longer_chain_gets_a_stage_per_step_and_the_order_is_kept() -> None:
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "d")])
    chosen = stages(g, dict.fromkeys("abcd", MIN), ORDER)
    position = {k: n for n, stage in enumerate(chosen) for k in stage}
    assert all(position[u] < position[v] for u, v in g.edges)
    assert cost(chosen, dict.fromkeys("abcd", MIN)) == 3 * MIN


def test_steps_ordered_through_an_unmapped_one_stay_ordered() -> None:
    # a -> r -> b with r unmapped: a still precedes b; c -> r says nothing about a.
    g = nx.DiGraph([("a", "r"), ("r", "b"), ("c", "r")])
    kept = restrict(g, ["a", "b", "c"])
    assert sorted(kept.edges) == [("a", "b"), ("c", "b")]
    assert list(kept.nodes) == ["a", "b", "c"]


def test_the_n_through_the_command_reports_the_extra_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "n.json"
    data = lambda_plan({"c": ["a", "b"], "d": ["b"]}, {"a": 10, "b": 1, "c": 1, "d": 10})
    plan.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "out"
    code, err = run(capsys, "export", "arc-region-switch", str(plan), "-o", str(out), *REQUIRED)
    assert code == 0, err
    assert "predicted: 20m in ARC's stages, 11m with drplan's scheduler" in err
    report = (out / "report.md").read_text()
    assert "| exported (the mapped steps, in their order) | 4 | 11m | 11m | 20m | 9m (+82%) |" in report
    assert "1. Parallel block, 10m: `svc.a` (10m), `svc.b` (1m)" in report
    steps = json.loads((out / "create-plan.json").read_text())["workflows"][0]["steps"]
    assert [s["executionBlockType"] for s in steps] == ["Parallel", "Parallel"]
    assert [
        [p["name"] for p in s["executionBlockConfiguration"]["parallelConfig"]["steps"]] for s in steps
    ] == [
        ["svc.a", "svc.b"],
        ["svc.c", "svc.d"],
    ]


# --- errors ------------------------------------------------------------------------------------------


def test_missing_options_are_named_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "export", "arc-region-switch", str(PLAN), "-o", str(tmp_path / "x"))
    assert code == 2
    assert (
        "missing --execution-role, --primary-region, --recovery-region, --recovery-approach: an ARC Region "
        "switch plan needs them and a drplan plan does not say them"
    ) in err
    assert not (tmp_path / "x").exists()


def test_malformed_options_are_explained() -> None:
    with pytest.raises(UsageError) as refused:
        settings(
            execution_role="arc-shop",
            primary_region="us-east-1",
            recovery_region="us-east-1",
            approach="activePassive",
            peers=["app.tasks"],
        )
    message = str(refused.value)
    assert "--execution-role 'arc-shop' is not an IAM role ARN" in message
    assert "--primary-region and --recovery-region must be two different Regions" in message
    assert "--peer 'app.tasks' must be SERVICE.STEP=ARN" in message


def test_manual_steps_need_the_approval_role(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "export", "arc-region-switch", str(PLAN), "-o", str(tmp_path / "x"), *REQUIRED)
    assert code == 2
    assert "1 manual step(s) (gate.approve) become ARC approvals" in err and "--approval-role ARN" in err


def test_blocks_acting_on_both_regions_say_which_peer_is_missing() -> None:
    exported = export_plan(build_plan(json.loads(PLAN.read_text())), the_settings())
    assert exported.unmapped["app.tasks"].startswith(
        "ARC scales a service to a percentage of the same service in the Region being left: give that service "
        "with --peer app.tasks=ARN"
    )
    assert (
        "contains a UUID drplan cannot derive from the name 'shop-workers-west'"
        in exported.unmapped["app.workers"]
    )
    # Without a peer, the Lambda and the promotion still map, with the difference said.
    assert any("--peer app.warm=ARN" in c for c in exported.blocks["app.warm"].caveats)
    assert any("--peer db.promote=ARN" in c for c in exported.blocks["db.promote"].caveats)


def test_a_peer_in_the_wrong_region_is_refused() -> None:
    wrong = the_settings(peers=[f"db.promote=arn:aws:rds:eu-west-1:{ACCOUNT}:db:orders"])
    exported = export_plan(build_plan(json.loads(PLAN.read_text())), wrong)
    assert exported.unmapped["db.promote"] == (
        f"--peer db.promote=arn:aws:rds:eu-west-1:{ACCOUNT}:db:orders must be the DB instance in us-east-1 "
        "(the other Region of the plan), not in eu-west-1"
    )


def test_a_bad_arn_given_on_the_command_line_fails_the_model_check() -> None:
    bad = the_settings(
        arns=["app.workers=arn:aws:autoscaling:us-west-2:1:group/w"], peers=[f"app.workers={WORKERS_EAST}"]
    )
    with pytest.raises(InvalidRequest) as refused:
        export_plan(build_plan(json.loads(PLAN.read_text())), bad)
    assert any(
        "asgs[0].arn: 'arn:aws:autoscaling:us-west-2:1:group/w' does not match" in p
        for p in refused.value.problems
    )


def test_lambda_payloads_references_and_other_regions_do_not_map() -> None:
    data = lambda_plan({}, {"a": 1, "b": 1, "c": 1})
    steps = data["services"]["svc"]["steps"]
    steps[0]["with"]["payload"] = {"x": 1}
    steps[1]["after"] = ["a"]
    steps[1]["with"]["function"] = "${svc.a.name}"
    steps[1]["with"]["outputs"] = ["name"]
    steps[0]["with"]["outputs"] = ["name"]
    steps[2]["region"] = "eu-west-1"
    exported_error = None
    try:
        export_plan(build_plan(data), the_settings())
    except NothingToExport as exc:
        exported_error = str(exc)
    assert exported_error is not None
    assert "svc.a: it sends a `payload`: ARC invokes the function with its own event" in exported_error
    assert (
        "svc.b: `function` is '${svc.a.name}': ARC steps cannot read another step's outputs" in exported_error
    )
    assert "svc.c: it runs in eu-west-1, which is neither --primary-region us-east-1 nor" in exported_error


def test_a_plan_with_nothing_to_map_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "restore-only.json"
    data = {
        "drplan": 1,
        "name": "restore-only",
        "services": {"db": {"steps": [{"id": "wait", "uses": "wait", "with": {"duration": "PT1M"}}]}},
    }
    plan.write_text(json.dumps(data), encoding="utf-8")
    code, err = run(capsys, "export", "arc-region-switch", str(plan), "-o", str(tmp_path / "x"), *REQUIRED)
    assert code == 1
    assert (
        "restore-only: no step maps onto an ARC Region switch execution block:\n  db.wait: ARC has no wait block"
        in err
    )


def test_active_active_deactivates_the_primary_and_still_validates() -> None:
    exported = export_plan(
        build_plan(json.loads(PLAN.read_text())), the_settings(approach="activeActive", name="shop-aa")
    )
    request = exported.request
    assert request["name"] == "shop-aa" and "primaryRegion" not in request
    assert {k: request["workflows"][0][k] for k in ("workflowTargetAction", "workflowTargetRegion")} == {
        "workflowTargetAction": "deactivate",
        "workflowTargetRegion": "us-east-1",
    }
    assert problems(request) == []
    assert lint(exported.template) == []


def test_export_lists_both_targets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", "--help"])
    assert exited.value.code == 0
    commands = capsys.readouterr().out.split("Commands:", 1)[1].split()
    assert "arc-region-switch" in commands and "stepfunctions" in commands


def test_a_botocore_without_the_model_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    from drplan.arcswitch import request
    from drplan.errors import DrplanError

    def missing(self: Loader, service_name: str, type_name: str, api_version: str | None = None) -> None:
        raise DataNotFoundError(data_path=service_name)

    request.input_shape.cache_clear()
    monkeypatch.setattr(Loader, "load_service_model", missing)
    try:
        with pytest.raises(DrplanError, match="has no model of ARC Region switch"):
            request.input_shape()
    finally:
        monkeypatch.undo()
        request.input_shape.cache_clear()


# --- the example plan: an Aurora global database switchover ----------------------------------------------


def test_the_failover_example_exports_its_aurora_switchover_and_the_request_is_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """plans/failover.json (regions by name, an Aurora global switchover, ECS, DNS, ARC, an approval):
    its switchover becomes ARC's Aurora global database block listing both member clusters, and the
    request passes botocore's model and the template cfn-lint."""
    from botocore.stub import Stubber

    example = HERE.parent / "plans" / "failover.json"
    out = tmp_path / "arc"
    code, err = run(
        capsys,
        *[
            "export",
            "arc-region-switch",
            str(example),
            "-o",
            str(out),
            *REQUIRED,
            "--approval-role",
            APPROVERS,
        ],
    )
    assert code == 0, err
    request = json.loads((out / "create-plan.json").read_text())
    blocks = [
        step["executionBlockConfiguration"]
        for stage in request["workflows"][0]["steps"]
        for step in (
            [stage]
            if stage["executionBlockType"] != "Parallel"
            else stage["executionBlockConfiguration"]["parallelConfig"]["steps"]
        )
    ]
    aurora = [b["globalAuroraConfig"] for b in blocks if "globalAuroraConfig" in b]
    assert len(aurora) == 1
    assert aurora[0]["behavior"] == "switchoverOnly" and "ungraceful" not in aurora[0]
    plan = json.loads(example.read_text())
    switch = next(
        s for s in plan["services"]["db"]["steps"] if s["uses"] == "aws.rds.switchover_global_cluster"
    )
    assert aurora[0]["globalClusterIdentifier"] == switch["with"]["global_cluster"]
    assert sorted(arn.split(":")[3] for arn in aurora[0]["databaseClusterArns"]) == ["us-east-1", "us-west-2"]
    client = stubbed_client(tmp_path, monkeypatch)
    with Stubber(client) as stubber:
        stubber.add_response("create_plan", created(request), expected_params=request)
        client.create_plan(**request)
    assert problems(request) == []
    assert lint(json.loads((out / "template.json").read_text())) == []
    # The whole export of the example, reviewed once: golden files (see this file's docstring).
    for name in FILES:
        golden = GOLDEN / f"arc_plans_failover.{name}"
        text = (out / name).read_text(encoding="utf-8")
        if os.environ.get("DRPLAN_UPDATE_GOLDEN"):
            golden.write_text(text, encoding="utf-8")
        assert text == golden.read_text(encoding="utf-8"), f"{name} differs from {golden}"


def test_a_failover_step_is_an_ungraceful_aurora_block() -> None:
    plan = build_plan(
        {
            "drplan": 1,
            "name": "aurora",
            "aws": {"region": "us-west-2", "account_id": ACCOUNT},
            "services": {
                "db": {
                    "steps": [
                        {
                            "id": "failover",
                            "uses": "aws.rds.failover_global_cluster",
                            "with": {"global_cluster": "orders-global", "target_cluster": "orders-west"},
                            "estimate": "PT10M",
                        }
                    ]
                }
            },
        }
    )
    exported = export_plan(plan, the_settings())
    (block,) = exported.blocks.values()
    config = block.config
    assert block.block_type == "AuroraGlobalDatabase"
    assert config["behavior"] == "failover" and config["ungraceful"] == {"ungraceful": "failover"}
    assert config["databaseClusterArns"] == [f"arn:aws:rds:us-west-2:{ACCOUNT}:cluster:orders-west"]
    assert any("--peer db.failover=ARN" in c for c in block.caveats)  # the primary's cluster is missing
    assert any("always fails over" in c for c in block.caveats)


# --- the failback workflow -----------------------------------------------------------------------------


def test_the_failback_activates_the_primary_with_the_blocks_that_act_both_ways(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    exported = export_plan(build_plan(json.loads(PLAN.read_text())), the_settings(**_peers()))
    recovery, failback = exported.request["workflows"]
    assert (recovery["workflowTargetAction"], recovery["workflowTargetRegion"]) == ("activate", "us-west-2")
    assert (failback["workflowTargetAction"], failback["workflowTargetRegion"]) == ("activate", "us-east-1")
    # With every peer given, each block acts both ways: the failback keeps the recovery's stages.
    assert exported.failback is not None and exported.failback.stages == exported.mapped.stages
    assert exported.not_back == {}
    by_name = {
        s["name"]: s
        for stage in failback["steps"]
        for s in (
            [stage]
            if stage["executionBlockType"] != "Parallel"
            else stage["executionBlockConfiguration"]["parallelConfig"]["steps"]
        )
    }
    assert set(by_name) == set(exported.blocks)
    # The same block in both workflows (ARC acts on the Region each one targets) ...
    recovered = {s["name"]: s for s in recovery["steps"]}
    assert (
        by_name["db.promote"]["executionBlockConfiguration"]
        == recovered["db.promote"]["executionBlockConfiguration"]
    )
    # ... with a description of the way back, not of the recovery.
    assert by_name["db.promote"]["description"].startswith(
        "Failback to us-east-1, the way back of db.promote"
    )
    assert "must be a read replica again" in by_name["db.promote"]["description"]
    client = stubbed_client(tmp_path, monkeypatch)
    with Stubber(client) as stubber:
        stubber.add_response("create_plan", created(exported.request), expected_params=exported.request)
        client.create_plan(**exported.request)
    assert problems(exported.request) == []
    assert lint(exported.template) == []
    report = exported.report()
    assert "the failback, *activate* us-east-1, of 6 stage(s)" in report
    assert "| failback workflow (its steps, in the same order) | 7 | 25m | 25m | 27m | 2m (+8%) |" in report


def test_without_peers_no_step_after_one_that_cannot_go_back_is_in_the_failback() -> None:
    exported = export_plan(build_plan(json.loads(PLAN.read_text())), the_settings())
    # The promotion names no instance in us-east-1 and the Lambda no function there: the routing
    # controls after them would move traffic back before the database, so they are left out too,
    # and an approval alone is no failback.
    assert exported.failback is None and len(exported.request["workflows"]) == 1
    assert exported.not_back == {
        "gate.approve": "no block but approvals would be in the failback workflow, so none is written",
        "db.promote": "no instance in us-east-1 is listed: give --peer db.promote=ARN",
        "app.warm": (
            "the failback's activatingRegion is us-east-1, where no function is listed: give --peer app.warm=ARN"
        ),
        "edge.primary_off": "it comes after `db.promote` and `app.warm` in the recovery, and they are not in the failback",
        "edge.recovery_on": "it comes after `db.promote` and `app.warm` in the recovery, and they are not in the failback",
    }
    assert (
        "## Failback workflow\n\nNot written: no block but approvals acts on the way back"
        in exported.report()
    )


def test_a_partial_failback_keeps_the_steps_before_the_one_that_cannot_go_back() -> None:
    # All peers but the Lambda's: everything up to the capacity goes back; the Lambda and the
    # routing controls after it do not.
    peers = _peers()
    peers["peers"] = [p for p in peers["peers"] if not p.startswith("app.warm=")]
    exported = export_plan(build_plan(json.loads(PLAN.read_text())), the_settings(**peers))
    assert exported.failback is not None
    assert exported.failback.stages == (("gate.approve",), ("db.promote",), ("app.tasks", "app.workers"))
    assert set(exported.not_back) == {"app.warm", "edge.primary_off", "edge.recovery_on"}
    assert problems(exported.request) == []


def test_active_active_fails_back_by_activating_the_primary_and_turning_its_control_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    exported = export_plan(
        build_plan(json.loads(PLAN.read_text())),
        the_settings(approach="activeActive", name="shop-aa", **_peers()),
    )
    recovery, failback = exported.request["workflows"]
    assert (recovery["workflowTargetAction"], recovery["workflowTargetRegion"]) == ("deactivate", "us-east-1")
    assert (failback["workflowTargetAction"], failback["workflowTargetRegion"]) == ("activate", "us-east-1")
    off = exported.blocks["edge.primary_off"]
    controls = off.config["regionAndRoutingControls"]
    assert list(controls) == ["us-east-1"] and controls["us-east-1"][0]["state"] == "Off"
    assert off.back is not None and off.back["regionAndRoutingControls"]["us-east-1"][0]["state"] == "On"
    # The recovery Region's control stays On when the primary takes traffic again (both are active).
    assert exported.blocks["edge.recovery_on"].back is None
    assert "stays On when us-east-1 is activated again" in exported.not_back["edge.recovery_on"]
    client = stubbed_client(tmp_path, monkeypatch)
    with Stubber(client) as stubber:
        stubber.add_response("create_plan", created(exported.request), expected_params=exported.request)
        client.create_plan(**exported.request)
    assert problems(exported.request) == []
    assert lint(exported.template) == []


# --- associated alarms -----------------------------------------------------------------------------------


def alarm_plan() -> dict[str, Any]:
    """A Lambda step (so that something maps) and the checks whose alarms may become associatedAlarms."""
    data = lambda_plan({}, {"a": 1})
    checks = [
        {"id": "healthy", "uses": "check.cloudwatch_alarm", "with": {"alarm": "shop-5xx", "for": "PT5M"}},
        {
            "id": "healthy_again",
            "uses": "check.cloudwatch_alarm",
            "with": {"alarm": "shop-5xx", "state": "OK"},
            "after": ["healthy"],
        },
        {
            "id": "payments",
            "uses": "check.cloudwatch_alarm",
            "with": {"alarm": "payments-errors"},
            "region": "us-east-1",
            "role_arn": "arn:aws:iam::444455556666:role/drplan-dr",
            "external_id": "shop-dr-2026",
        },
        {"id": "alarming", "uses": "check.cloudwatch_alarm", "with": {"alarm": "canary", "state": "ALARM"}},
        {
            "id": "from_output",
            "uses": "check.cloudwatch_alarm",
            "with": {"alarm": "${svc.a.name}"},
            "after": ["a"],
        },
        {
            "id": "dns",
            "uses": "check.route53_health",
            "with": {"health_check_id": "7c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"},
        },
    ]
    data["services"]["svc"]["steps"][0]["with"]["outputs"] = ["name"]
    data["services"]["checks"] = {"steps": checks}
    return data


def test_alarm_checks_become_application_health_alarms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.stub import Stubber

    exported = export_plan(build_plan(alarm_plan()), the_settings())
    assert exported.request["associatedAlarms"] == {
        "shop-5xx": {
            "resourceIdentifier": f"arn:aws:cloudwatch:us-west-2:{ACCOUNT}:alarm:shop-5xx",
            "alarmType": "applicationHealth",
        },
        # In the other Region and account: the step's role, with its external ID.
        "payments-errors": {
            "resourceIdentifier": "arn:aws:cloudwatch:us-east-1:444455556666:alarm:payments-errors",
            "alarmType": "applicationHealth",
            "crossAccountRole": "arn:aws:iam::444455556666:role/drplan-dr",
            "externalId": "shop-dr-2026",
        },
    }
    assert exported.alarms["shop-5xx"].steps == ("checks.healthy", "checks.healthy_again")
    assert exported.not_associated == {
        "checks.alarming": (
            "it waits for the alarm to be ALARM: ARC reads an application health alarm as healthy when it is OK"
        ),
        "checks.from_output": "`alarm` is '${svc.a.name}': ARC steps cannot read another step's outputs or a secret",
        "checks.dns": (
            "a Route 53 health check is not a CloudWatch alarm: ARC's associatedAlarms hold alarms only (an alarm "
            "on the check's HealthCheckStatus metric, AWS/Route53 in us-east-1, could be one)"
        ),
    }
    # The checks themselves stay steps ARC cannot run, and say where their alarm went.
    assert exported.unmapped["checks.healthy"].endswith(
        "its alarm is the plan's application health alarm `shop-5xx`"
    )
    assert "application health alarm" not in exported.unmapped["checks.alarming"]
    assert "triggers" not in exported.request
    client = stubbed_client(tmp_path, monkeypatch)
    with Stubber(client) as stubber:
        stubber.add_response("create_plan", created(exported.request), expected_params=exported.request)
        client.create_plan(**exported.request)
    assert problems(exported.request) == []
    props = exported.template["Resources"]["Plan"]["Properties"]
    assert props["AssociatedAlarms"]["payments-errors"] == {
        "ResourceIdentifier": "arn:aws:cloudwatch:us-east-1:444455556666:alarm:payments-errors",
        "AlarmType": "applicationHealth",
        "CrossAccountRole": "arn:aws:iam::444455556666:role/drplan-dr",
        "ExternalId": "shop-dr-2026",
    }
    assert lint(exported.template) == []
    report = exported.report()
    assert (
        f"| `shop-5xx` | `arn:aws:cloudwatch:us-west-2:{ACCOUNT}:alarm:shop-5xx` | `checks.healthy`, `checks.healthy_again` |"
        in report
    )
    broken = copy.deepcopy(exported.request)
    broken["associatedAlarms"]["shop-5xx"]["alarmType"] = "health"
    assert problems(broken) == [
        "associatedAlarms['shop-5xx'].alarmType: 'health' is not one of applicationHealth, trigger"
    ]


def test_a_cross_account_block_carries_the_steps_external_id() -> None:
    data = lambda_plan({}, {"a": 1})
    step = data["services"]["svc"]["steps"][0]
    step["role_arn"] = "arn:aws:iam::444455556666:role/drplan-dr"
    step["external_id"] = "shop-dr-2026"
    (block,) = export_plan(build_plan(data), the_settings()).blocks.values()
    assert block.config["lambdas"] == [
        {
            "arn": "arn:aws:lambda:us-west-2:444455556666:function:fn-a",
            "crossAccountRole": "arn:aws:iam::444455556666:role/drplan-dr",
            "externalId": "shop-dr-2026",
        }
    ]


# --- ARC's execution blocks, all of them ----------------------------------------------------------------


def test_every_execution_block_of_the_model_is_mapped_or_says_why_not_here_and_in_the_docs() -> None:
    from drplan.arcswitch.blocks import EXECUTION_BLOCKS
    from drplan.arcswitch.request import input_shape

    step = input_shape().members["workflows"].member.members["steps"].member
    types = set(step.members["executionBlockType"].enum)
    union = step.members["executionBlockConfiguration"]
    assert len(union.members) == len(types) == 14  # one configuration member per type
    assert set(EXECUTION_BLOCKS) == types
    docs = (HERE.parent / "docs" / "arc-region-switch.md").read_text(encoding="utf-8")
    section = docs.split("### Every ARC execution block", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")
    }
    assert set(rows) == types
    for block_type, source in EXECUTION_BLOCKS.items():
        said = "mapped" if source.startswith("from") else "not mapped"
        assert f"| {said}" in rows[block_type], block_type
