"""aws.arc.set_routing_control exported to Step Functions: every call through the calls function,
which tries the cluster's endpoints in turn as the local action does.

moto has no Route 53 ARC: :class:`tests.arc_cluster.ArcCluster` answers its cluster API for drplan's
own run and for the calls function alike (run in-process in moto's Lambda by
tests/moto_lambda_runs.py, its clients routed by tests/moto_emulated.py). Each test runs the same
plan both ways against clusters seeded alike and compares the routing controls' states after, the
steps' statuses, outputs and failure messages, and which endpoints were asked.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from drplan.stepfunctions.calls_handler import handler
from drplan.stepfunctions.export import ExportRefused
from tests.arc_cluster import ArcCluster, AssertionRule
from tests.moto_emulated import emulated_session, every_client_through
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.moto_lambda_runs import moto_runs_lambda_code
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    RUN_ID,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    lint_template,
    records,
    statuses,
)
from tests.test_stepfunctions_regions import deploy_calls_function

SERVICE = "route53-recovery-cluster"
AWS = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
PANEL = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef"
EAST = f"{PANEL}/routingcontrol/east0000east0000"
WEST = f"{PANEL}/routingcontrol/west1111west1111"
GATE = f"{PANEL}/routingcontrol/gate2222gate2222"
DRILL = f"{PANEL}/routingcontrol/drill333drill333"
RULE = f"{PANEL}/safetyrule/one4444one4444on"
HOSTS = [
    "aaaa1111.route53-recovery-cluster.us-east-1.amazonaws.com",
    "bbbb2222.route53-recovery-cluster.us-west-2.amazonaws.com",
]
ENDPOINTS = [
    {"endpoint": f"https://{HOSTS[0]}/v1", "region": "us-east-1"},
    {"endpoint": f"https://{HOSTS[1]}/v1", "region": "us-west-2"},
]


def turn(control: str, state: str, **extra: Any) -> dict[str, Any]:
    return {
        "uses": "aws.arc.set_routing_control",
        "with": {"routing_control_arn": control, "state": state, "cluster_endpoints": ENDPOINTS, **extra},
    }


def failover(*steps: dict[str, Any]) -> dict[str, Any]:
    """Turn West On, then East Off; ``steps`` (id, spec) replace them."""
    chosen = steps or (
        {"id": "west-on", **turn(WEST, "On")},
        {"id": "east-off", "depends_on": ["west-on"], **turn(EAST, "Off")},
    )
    return plan_data({"edge": {"steps": list(chosen)}}, name="arc")


def cluster(down: set[str] | None = None) -> ArcCluster:
    """East On, West and the gate Off, the drill control Off; at least one of East and West On."""
    return ArcCluster(
        {EAST: "On", WEST: "Off", GATE: "Off", DRILL: "Off"},
        rules=[AssertionRule(RULE, [EAST, WEST], 1)],
        down=set(down or ()),
    )


def both(
    data: dict[str, Any], mode: str = "recover", down: set[str] | None = None, **export: Any
) -> tuple[Any, ArcCluster, dict[str, Any], ArcCluster, list[Any], Any]:
    """``data`` run by drplan and by its exported machine against clusters seeded alike: (local
    run, its cluster, the execution's records, its cluster, the calls function's events, the export)."""
    local_cluster = cluster(down)
    with mock_aws():
        local = run_plan(data, mode, run_id=RUN_ID, aws=emulated_session(local_cluster, SERVICE))  # type: ignore[arg-type]
        if export.get("rollback_on_failure"):
            assert local.runner.rollback() == []
        if mode == "drill":
            assert local.runner.cleanup() == []
    exported = export_plan(build_plan(data), mode, options=FAST, history_budget=ONE_MACHINE, **export)  # type: ignore[arg-type]
    machine_cluster = cluster(down)
    with (
        every_client_through(machine_cluster, SERVICE),
        mock_aws(config=AWS),
        moto_runs_lambda_code() as invoked,
        moto_evaluates_jsonata(),
    ):
        deploy_calls_function(exported.template)
        described = execute(exported.definition, table=exported.coordination_table)
    doc = records(described)
    doc["sids"] = exported.sids
    return local, local_cluster, doc, machine_cluster, invoked, exported


def outcome(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return doc["steps"][doc["sids"][key]]


@pytest.mark.slow
def test_a_failover_turns_the_controls_as_the_local_recover_does() -> None:
    data = failover()
    local, local_cluster, doc, machine_cluster, invoked, exported = both(data, down={HOSTS[0]})
    assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []
    expected = {k: r.status for k, r in local.outcome.records.items()}
    assert expected == {"edge.west-on": "succeeded", "edge.east-off": "succeeded"}
    assert statuses(doc, exported.sids) == expected
    assert (
        machine_cluster.states == local_cluster.states == {EAST: "Off", WEST: "On", GATE: "Off", DRILL: "Off"}
    )
    for key, rec in local.outcome.records.items():
        assert outcome(doc, key)["out"] == rec.outputs
    # The first endpoint is down: both passed it over and made each change at the second one. The
    # local step starts at the endpoint that answered its last call; each invocation of the
    # function here is a cold one (tests/moto_lambda_runs.py runs its code afresh), which starts
    # at the first endpoint (a warm one starts where it was answered last: tested below).
    assert local_cluster.asked("UpdateRoutingControlState") == [HOSTS[1], HOSTS[1]]
    assert machine_cluster.asked("UpdateRoutingControlState") == [HOSTS[0], HOSTS[1], HOSTS[0], HOSTS[1]]
    # Every call went through the function, with the cluster's endpoints, in Step Functions' spelling.
    assert {e["service"] for e in invoked} == {"route53recoverycluster"}
    assert all(e["endpoints"] == ENDPOINTS for e in invoked)
    update = next(e for e in invoked if e["action"] == "updateRoutingControlState")
    assert update["parameters"] == {"RoutingControlArn": WEST, "RoutingControlState": "On"}
    # The state machine's role may only invoke the function; the function's role may change ARC.
    machine = {a for s in exported.policy["Statement"] for a in s["Action"]}
    assert not {a for a in machine if a.startswith("route53-recovery-cluster:")}
    assert "lambda:InvokeFunction" in machine


@pytest.mark.slow
def test_a_safety_rule_refusal_fails_with_the_local_message_and_rolls_back_alike() -> None:
    data = failover(
        {"id": "gate-on", **turn(GATE, "On")},
        {"id": "east-off", "depends_on": ["gate-on"], **turn(EAST, "Off")},
    )
    local, local_cluster, doc, machine_cluster, _, _ = both(data, rollback_on_failure=True)
    failed = local.outcome.records["edge.east-off"]
    assert failed.status == "failed"
    assert (
        failed.error is not None and "A safety rule of the control panel blocks this change" in failed.error
    )
    assert failed.error.startswith("ARC refused to turn routing control east0000east0000 Off: Cannot update")
    assert outcome(doc, "edge.east-off")["cause"] == failed.error
    assert statuses(doc, doc["sids"]) == {k: r.status for k, r in local.outcome.records.items()}
    # The rollback put the gate back Off; East was never turned.
    assert (
        machine_cluster.states == local_cluster.states == {EAST: "On", WEST: "Off", GATE: "Off", DRILL: "Off"}
    )


@pytest.mark.slow
def test_overriding_the_rule_breaks_the_glass_alike() -> None:
    data = failover({"id": "east-off", **turn(EAST, "Off", safety_rules_to_override=[RULE])})
    local, local_cluster, doc, machine_cluster, invoked, _ = both(data)
    assert local.outcome.records["edge.east-off"].status == "succeeded"
    assert outcome(doc, "edge.east-off")["status"] == "succeeded"
    assert machine_cluster.states == local_cluster.states
    assert machine_cluster.states[EAST] == "Off"
    update = next(e for e in invoked if e["action"] == "updateRoutingControlState")
    assert update["parameters"]["SafetyRulesToOverride"] == [RULE]


@pytest.mark.slow
def test_a_drill_turns_the_drill_control_and_puts_it_back() -> None:
    step = {"id": "west-on", **turn(WEST, "On"), "drill_with": {"routing_control_arn": DRILL}}
    local, local_cluster, doc, machine_cluster, _, _ = both(failover(step), "drill")
    assert local.outcome.records["edge.west-on"].status == "succeeded"
    assert outcome(doc, "edge.west-on")["status"] == "succeeded"
    # The drill control went On and was put back Off; production's controls were never touched.
    assert machine_cluster.states == local_cluster.states == cluster().states
    for seen in (machine_cluster, local_cluster):
        changes = [body for _, op, body in seen.log if op == "UpdateRoutingControlState"]
        assert [(c["RoutingControlArn"], c["RoutingControlState"]) for c in changes] == [
            (DRILL, "On"),
            (DRILL, "Off"),
        ]


def test_the_recovery_of_plans_failover_now_exports() -> None:
    """plans/failover.json: its ARC step was the last one refused in a recovery."""
    import json
    from pathlib import Path

    plan = build_plan(json.loads((Path(__file__).parents[1] / "plans" / "failover.json").read_text()))
    exported = export_plan(plan, "recover")
    assert lint_definition(exported.definition) == []
    keys = [k for k, r in exported.routes.items() if r.endpoints]
    assert keys and all(plan.step(k).uses == "aws.arc.set_routing_control" for k in keys)


def test_steps_that_shape_the_machine_from_references_are_refused() -> None:
    for field, value in (
        ("routing_control_arn", "${edge.gate.routing_control_arn}"),
        ("state", "${edge.gate.state}"),
    ):
        west = {"id": "west", "depends_on": ["gate"], **turn(WEST, "On")}
        west["with"][field] = value
        data = failover({"id": "gate", **turn(GATE, "On")}, west)
        with pytest.raises(
            ExportRefused, match=rf"edge.west .*`{field}` must be known when the plan is exported"
        ):
            export_plan(build_plan(data), "recover")


# --- the calls function and the endpoints -------------------------------------------------------


@pytest.fixture
def arc_everywhere() -> Iterator[ArcCluster]:
    from drplan.stepfunctions import calls_handler

    calls_handler._ANSWERED.clear()  # a cold function: no endpoint answered yet
    found = cluster()
    with every_client_through(found, SERVICE), mock_aws():
        yield found


def _get(endpoints: list[dict[str, str]] = ENDPOINTS) -> dict[str, Any]:
    return {
        "service": "route53recoverycluster",
        "action": "getRoutingControlState",
        "region": None,
        "role": None,
        "endpoints": copy.deepcopy(endpoints),
        "parameters": {"RoutingControlArn": EAST},
    }


def test_the_function_passes_over_an_endpoint_that_is_down_and_starts_where_one_answered(
    arc_everywhere: ArcCluster,
) -> None:
    arc_everywhere.down = {HOSTS[0]}
    assert handler(_get(), None)["RoutingControlState"] == "On"
    assert handler(_get(), None)["RoutingControlState"] == "On"
    # Down, then the second; the next invocation starts at the second.
    assert arc_everywhere.asked("GetRoutingControlState") == [HOSTS[0], HOSTS[1], HOSTS[1]]


def test_the_function_raises_the_last_endpoints_error_when_none_answers(arc_everywhere: ArcCluster) -> None:
    arc_everywhere.down = set(HOSTS)
    reversed_endpoints = list(reversed(ENDPOINTS))  # another list: no endpoint remembered for it
    with pytest.raises(Exception) as raised:
        handler(_get(reversed_endpoints), None)
    assert type(raised.value).__name__ == "Route53RecoveryCluster.EndpointTemporarilyUnavailableException"
    assert str(raised.value).startswith(
        f"{HOSTS[0]} is down (Service: Route53RecoveryCluster, Status Code: 503"
    )
    assert arc_everywhere.asked("GetRoutingControlState") == [HOSTS[1], HOSTS[0]]


def test_the_function_does_not_pass_over_a_refusal(arc_everywhere: ArcCluster) -> None:
    event = {**_get(), "parameters": {"RoutingControlArn": f"{PANEL}/routingcontrol/missing"}}
    with pytest.raises(Exception) as raised:
        handler(event, None)
    assert type(raised.value).__name__ == "Route53RecoveryCluster.ResourceNotFoundException"
    assert len(arc_everywhere.log) == 1


def test_the_function_passes_over_the_errors_the_local_step_passes_over() -> None:
    """The calls function cannot import drplan (its code is inline in the template): its lists of
    errors after which another endpoint may answer, and of botocore's errors worth another try,
    are copies of the local ones."""
    from drplan import aws
    from drplan.actions.arc import routing_control
    from drplan.stepfunctions import calls_handler

    assert calls_handler._TRY_ANOTHER == routing_control._TRY_ANOTHER
    assert calls_handler._UNREACHABLE == aws.UNREACHABLE_EXCEPTIONS
    assert calls_handler._TRANSIENT == aws.TRANSIENT_EXCEPTIONS


def test_the_function_passes_over_an_endpoint_no_connection_reaches(arc_everywhere: ArcCluster) -> None:
    arc_everywhere.unreachable = {HOSTS[0]}
    assert handler(_get(), None)["RoutingControlState"] == "On"
    assert [(host, op) for host, op, _ in arc_everywhere.log] == [
        (HOSTS[0], "unreachable"),
        (HOSTS[1], "GetRoutingControlState"),
    ]
    arc_everywhere.unreachable = set(HOSTS)
    with pytest.raises(Exception) as raised:
        handler(_get(list(reversed(ENDPOINTS))), None)
    # None reached: the last one's error, under the name the tasks retry (as the local engine does).
    assert type(raised.value).__name__ == "Route53RecoveryCluster.SdkClientException"
    assert "Could not connect to the endpoint URL" in str(raised.value)


def test_the_function_does_not_pass_over_a_request_botocore_refuses(arc_everywhere: ArcCluster) -> None:
    event = {**_get(), "parameters": {"RoutingControlArn": ""}}  # shorter than the API allows
    with pytest.raises(Exception) as raised:
        handler(event, None)
    assert type(raised.value).__name__ == "Route53RecoveryCluster.InvalidRequestException"
    assert "Invalid length for parameter RoutingControlArn" in str(raised.value)
    assert arc_everywhere.log == []  # no endpoint was asked, and none again
