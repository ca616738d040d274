"""aws.arc.set_routing_control with botocore's Stubber: moto has no Route 53 ARC. Each cluster
endpoint gets its own stubbed client (made for that endpoint and Region, as drplan makes them), and
the Stubber validates every request against the real route53-recovery-cluster model."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from drplan.actions import registry
from drplan.actions.base import AwsAccess
from drplan.aws import AwsSession
from drplan.document import read_document
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.runner import Runner
from drplan.errors import StepFailed
from drplan.model import build_plan
from drplan.pipeline import validate_document
from tests.runs import FAST, one_step, plan_data

ACTION = "aws.arc.set_routing_control"
PANEL = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef"
WEST = f"{PANEL}/routingcontrol/1a2b3c4d5e6f7a8b"
RULE = f"{PANEL}/safetyrule/9f8e7d6c5b4a3f2e"
ENDPOINTS = [
    {
        "endpoint": "https://aaaa1111.route53-recovery-cluster.us-east-1.amazonaws.com/v1",
        "region": "us-east-1",
    },
    {
        "endpoint": "https://bbbb2222.route53-recovery-cluster.us-west-2.amazonaws.com/v1",
        "region": "us-west-2",
    },
]


class Cluster(AwsAccess):
    """One stubbed client per cluster endpoint."""

    def __init__(self) -> None:
        self.clients = {
            e["endpoint"]: boto3.client(
                "route53-recovery-cluster",
                region_name=e["region"],
                endpoint_url=e["endpoint"],
                aws_access_key_id="a",
                aws_secret_access_key="b",
            )
            for e in ENDPOINTS
        }
        self.stubs = {url: Stubber(client) for url, client in self.clients.items()}
        self.asked: list[tuple[str, str | None]] = []

    def client(
        self,
        service: str,
        *,
        region: str | None = None,
        role_arn: str | None = None,
        endpoint_url: str | None = None,
    ) -> Any:
        assert service == "route53-recovery-cluster" and endpoint_url in self.clients
        self.asked.append((endpoint_url, region))
        client = self.clients[endpoint_url]
        assert client.meta.region_name == region  # signed for the endpoint's Region
        return client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"

    def stub(self, index: int) -> Stubber:
        return self.stubs[ENDPOINTS[index]["endpoint"]]

    def __enter__(self) -> Cluster:
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()
            stub.deactivate()


def params(**extra: Any) -> dict[str, Any]:
    return {"routing_control_arn": WEST, "state": "On", "cluster_endpoints": ENDPOINTS, **extra}


def step_context(data: dict[str, Any], aws: AwsAccess, mode: str = "recover"):
    prepared = prepare(build_plan(data), mode, registry(), run_id="t35t1d")  # type: ignore[arg-type]
    runner = Runner(prepared, aws, EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def state(value: str) -> dict[str, Any]:
    return {"RoutingControlArn": WEST, "RoutingControlState": value, "RoutingControlName": "us-west-2-cell"}


GET = {"RoutingControlArn": WEST}


def test_turns_the_control_on_reads_it_back_and_undo_turns_it_off_again():
    action = registry()[ACTION]
    with Cluster() as cluster:
        ctx = step_context(one_step(ACTION, params()), cluster)
        first = cluster.stub(0)
        first.add_response("get_routing_control_state", state("Off"), GET)
        first.add_response("update_routing_control_state", {}, {**GET, "RoutingControlState": "On"})
        first.add_response("get_routing_control_state", state("On"), GET)
        handle = action.start(ctx)
        poll = action.poll(ctx, handle)
        assert (poll.done, poll.note) == (True, "routing control 1a2b3c4d5e6f7a8b is On")
        assert action.result(ctx, handle) == {"routing_control_arn": WEST, "state": "On"}
        assert handle == {"routing_control_arn": WEST, "previous": "Off", "state": "On", "endpoint": 0}

        first.add_response("get_routing_control_state", state("On"), GET)
        first.add_response("update_routing_control_state", {}, {**GET, "RoutingControlState": "Off"})
        first.add_response("get_routing_control_state", state("Off"), GET)
        undo = action.undo(ctx, handle)
        assert action.poll_undo(ctx, handle, undo).note == "routing control 1a2b3c4d5e6f7a8b is back Off"


def test_an_unavailable_endpoint_is_skipped_for_the_next_one():
    action = registry()[ACTION]
    with Cluster() as cluster:
        ctx = step_context(one_step(ACTION, params()), cluster)
        notes: list[str] = []
        ctx.note = notes.append
        cluster.stub(0).add_client_error(
            "get_routing_control_state",
            "EndpointTemporarilyUnavailableException",
            "The cluster endpoint isn't available. Try another cluster endpoint.",
            503,
            expected_params=GET,
        )
        second = cluster.stub(1)
        second.add_response("get_routing_control_state", state("Off"), GET)
        second.add_response("update_routing_control_state", {}, {**GET, "RoutingControlState": "On"})
        second.add_response("get_routing_control_state", state("On"), GET)  # the poll starts there
        handle = action.start(ctx)
        assert handle["endpoint"] == 1
        assert action.poll(ctx, handle).done
    assert [region for _, region in cluster.asked] == ["us-east-1", "us-west-2", "us-west-2", "us-west-2"]
    assert notes == [
        f"cluster endpoint {ENDPOINTS[0]['endpoint']} did not answer (The cluster endpoint isn't available. "
        "Try another cluster endpoint.); trying the next"
    ]


def test_a_control_already_in_the_state_is_left_alone():
    action = registry()[ACTION]
    with Cluster() as cluster:
        ctx = step_context(one_step(ACTION, params()), cluster)
        cluster.stub(0).add_response("get_routing_control_state", state("On"), GET)
        cluster.stub(0).add_response("get_routing_control_state", state("On"), GET)
        handle = action.start(ctx)
        assert action.poll(ctx, handle).note == "routing control 1a2b3c4d5e6f7a8b is On (it was already)"
        cluster.stub(0).add_response("get_routing_control_state", state("On"), GET)
        cluster.stub(0).add_response("get_routing_control_state", state("On"), GET)
        assert action.poll_undo(ctx, handle, action.undo(ctx, handle)).done  # nothing to put back


def test_a_safety_rule_refusal_is_explained_and_rules_can_be_overridden():
    action = registry()[ACTION]
    with Cluster() as cluster:
        ctx = step_context(one_step(ACTION, params(state="Off")), cluster)
        first = cluster.stub(0)
        first.add_response("get_routing_control_state", state("On"), GET)
        first.add_client_error(
            "update_routing_control_state",
            "ConflictException",
            "Unable to update routing control state: the change would violate a safety rule",
            409,
            expected_params={**GET, "RoutingControlState": "Off"},
        )
        with pytest.raises(StepFailed) as refused:
            action.start(ctx)
        assert refused.value.reason.startswith(
            "ARC refused to turn routing control 1a2b3c4d5e6f7a8b Off: Unable to update routing control state: "
            "the change would violate a safety rule. A safety rule of the control panel blocks this change"
        )
        assert "`safety_rules_to_override`" in refused.value.reason

        ctx = step_context(one_step(ACTION, params(state="Off", safety_rules_to_override=[RULE])), cluster)
        first.add_response("get_routing_control_state", state("On"), GET)
        first.add_response(
            "update_routing_control_state",
            {},
            {**GET, "RoutingControlState": "Off", "SafetyRulesToOverride": [RULE]},
        )
        assert action.start(ctx)["previous"] == "On"


def test_other_refusals_say_what_arc_said():
    action = registry()[ACTION]
    with Cluster() as cluster:
        ctx = step_context(one_step(ACTION, params()), cluster)
        cluster.stub(0).add_response("get_routing_control_state", state("Off"), GET)
        cluster.stub(0).add_client_error(
            "update_routing_control_state",
            "AccessDeniedException",
            "User is not authorized to perform: route53-recovery-cluster:UpdateRoutingControlState",
            403,
        )
        with pytest.raises(
            StepFailed, match="ARC refused to turn routing control 1a2b3c4d5e6f7a8b On: User is not"
        ):
            action.start(ctx)


def test_preflight_reads_the_state_only():
    action = registry()[ACTION]
    with Cluster() as cluster:
        ctx = step_context(one_step(ACTION, params()), cluster)
        cluster.stub(0).add_response("get_routing_control_state", state("Off"), GET)
        [ok] = action.preflight(ctx)
        cluster.stub(0).add_client_error(
            "get_routing_control_state", "ResourceNotFoundException", "not found", 404, expected_params=GET
        )
        [missing] = action.preflight(ctx)
    assert (ok.status, ok.message) == ("ok", "routing control 1a2b3c4d5e6f7a8b is Off; would turn it On")
    assert ok.facts["endpoint"] == ENDPOINTS[0]["endpoint"]
    assert missing.status == "error" and "does not exist" in missing.message


def test_skipped_in_drills_unless_drill_with_names_a_drill_control():
    drill = prepare(build_plan(one_step(ACTION, params())), "drill", registry(), run_id="t35t1d")
    assert "svc.s" in drill.skipped
    other = f"{PANEL}/routingcontrol/0000000000000000"
    redirected = prepare(
        build_plan(one_step(ACTION, params(), drill_with={"routing_control_arn": other})),
        "drill",
        registry(),
        run_id="t",
    )
    assert redirected.steps["svc.s"].params["routing_control_arn"] == other


def test_the_plan_validates_and_bad_arns_are_named():
    def plan(**step: Any) -> bytes:
        return json.dumps(
            plan_data({"edge": {"steps": [{"id": "flip", "uses": ACTION, "with": step, "estimate": "PT1M"}]}})
        ).encode()

    assert validate_document(read_document("p.json", data=plan(**params()))).errors == []
    bad = validate_document(
        read_document("p.json", data=plan(**params(routing_control_arn="cell-west")))
    ).errors
    assert [d.message for d in bad] == [
        "step `flip` of service `edge`: `with.routing_control_arn` must be a routing control ARN such as "
        "arn:aws:route53-recovery-control::123456789012:controlpanel/abc/routingcontrol/def"
    ]


def test_sessions_make_a_client_per_cluster_endpoint_and_an_emulator_endpoint_wins():
    session = AwsSession(region="us-east-1", credentials=("a", "b"))
    east = session.client(
        "route53-recovery-cluster", region="us-east-1", endpoint_url=ENDPOINTS[0]["endpoint"]
    )
    west = session.client(
        "route53-recovery-cluster", region="us-west-2", endpoint_url=ENDPOINTS[1]["endpoint"]
    )
    assert east.meta.endpoint_url == ENDPOINTS[0]["endpoint"] and west.meta.region_name == "us-west-2"
    assert (
        session.client("route53-recovery-cluster", region="us-east-1", endpoint_url=ENDPOINTS[0]["endpoint"])
        is east
    )
    emulated = AwsSession(region="us-east-1", credentials=("a", "b"), endpoint_url="http://127.0.0.1:5000")
    client = emulated.client(
        "route53-recovery-cluster", region="us-east-1", endpoint_url=ENDPOINTS[0]["endpoint"]
    )
    assert client.meta.endpoint_url == "http://127.0.0.1:5000"  # nothing escapes the sandbox
