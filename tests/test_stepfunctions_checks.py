"""``check.http`` and ``check.tcp`` exported to Step Functions: each try is an invocation of the
checks function the template deploys, whose code (drplan/actions/probes.py, inline in the
template) runs here in-process against a real HTTP server on this machine (tests/moto_lambda_runs.py:
moto's simple Lambda would answer without running anything).

Each plan runs locally first, then as an execution of the exported machine, against the same
server: the same statuses, outputs and messages, and the server sees the same requests.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner
from moto import mock_aws

from drplan.actions import probes
from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from tests.moto_lambda_runs import deploy_inline_function, moto_runs_lambda_code
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    TABLE,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    lint_template,
    records,
    statuses,
)

AWS = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}


class Service:
    """An HTTP service coming up: ``/health`` answers 503 to its first ``warming`` requests, then
    200 with ``status: ok``; every request's path is kept."""

    def __init__(self, warming: int) -> None:
        self.warming = warming
        self.paths: list[str] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.paths.append(self.path)
                warm = sum(1 for p in service.paths if p.startswith("/health")) > service.warming
                code, body = (
                    (200, b"status: ok") if warm or not self.path.startswith("/health") else (503, b"")
                )
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self) -> None:
        self.paths.clear()


@pytest.fixture
def service() -> Iterator[Service]:
    running = Service(warming=2)
    yield running
    running.server.shutdown()
    running.server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deploy_checks_function(template: dict[str, Any]) -> None:
    deploy_inline_function(template, "ChecksFunction")


def seed() -> None:
    ddb = boto3.client("dynamodb", region_name=REGION)
    ddb.create_table(TableName="carts", **TABLE)
    ddb.create_backup(TableName="carts", BackupName="carts-nightly")


def checks_plan(port: int, closed: int) -> dict[str, Any]:
    """A restore, then an HTTP check whose URL carries the restored table's name (a reference) and
    that passes on the third try; a TCP check of the service's port; one of a closed port, which
    times out and so skips its dependent; an HTTP check that cannot be tried (its URL, from a
    reference, is not one)."""
    base = f"http://127.0.0.1:{port}"
    return plan_data(
        {
            "carts": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "carts", "target": "carts-restored"},
                    },
                    {
                        "id": "healthy",
                        "uses": "check.http",
                        "with": {
                            "url": base + "/health?table=${carts.restore.table_name}",
                            "expect_status": [200, 204],
                            "body_contains": "ok",
                            "headers": {"X-Drill": "yes"},
                            "interval": "PT1S",
                        },
                        "timeout": "PT30S",
                    },
                    {"id": "reachable", "uses": "check.tcp", "with": {"host": "127.0.0.1", "port": port}},
                ]
            },
            "ledger": {
                "steps": [
                    {
                        "id": "reachable",
                        "uses": "check.tcp",
                        "with": {"host": "127.0.0.1", "port": closed, "interval": "PT1S"},
                        "timeout": "PT3S",
                    }
                ]
            },
            "reports": {
                "depends_on": ["ledger"],
                "steps": [{"id": "settle", "uses": "wait", "with": {"duration": "PT1S"}}],
            },
            "files": {
                # A URL known only at run time, that turns out not to be one.
                "depends_on": ["carts"],
                "steps": [
                    {"id": "served", "uses": "check.http", "with": {"url": "${carts.restore.table_name}"}}
                ],
            },
        },
        name="checked",
    )


@pytest.mark.slow
def test_checks_in_the_state_machine_see_and_say_what_the_local_checks_do(service: Service) -> None:
    data = checks_plan(service.port, closed_port())
    with mock_aws():
        seed()
        local = run_plan(data, run_id=RUN_ID)
    expected_status = {k: r.status for k, r in local.outcome.records.items()}
    assert expected_status == {
        "carts.restore": "succeeded",
        "carts.healthy": "succeeded",
        "carts.reachable": "succeeded",
        "ledger.reachable": "failed",
        "reports.settle": "skipped",
        "files.served": "failed",
    }
    local_paths = list(service.paths)
    assert local_paths == ["/health?table=carts-restored"] * 3  # two 503s, then 200

    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []
    service.reset()
    with mock_aws(config=AWS), moto_runs_lambda_code() as invoked:
        seed()
        deploy_checks_function(exported.template)
        described = execute(exported.definition, table=exported.coordination_table)
    assert service.paths == local_paths
    doc = records(described)
    assert statuses(doc, exported.sids) == expected_status
    steps = {key: doc["steps"][sid] for key, sid in exported.sids.items()}
    for key in ("carts.healthy", "carts.reachable"):
        assert steps[key]["out"] == local.outcome.records[key].outputs, key
    url = f"http://127.0.0.1:{service.port}/health?table=carts-restored"
    assert steps["carts.healthy"]["out"] == {"status": 200, "url": url}
    for key in ("ledger.reachable", "files.served"):
        assert steps[key]["cause"] == local.outcome.records[key].error, key
    assert steps["ledger.reachable"]["cause"] == "timed out after 3.0s"
    assert steps["files.served"]["cause"] == "'carts-restored' is not an http:// or https:// URL"
    # The function was sent the step's parameters, the reference filled in, nothing else.
    http = [e for e in invoked if e["check"] == "http" and "127.0.0.1" in e["params"]["url"]]
    assert http[0]["params"] == {
        "url": url,
        "expect_status": [200, 204],
        "body_contains": "ok",
        "headers": {"X-Drill": "yes"},
    }
    assert http[0]["request_timeout"] == 10.0


def test_the_template_deploys_the_checks_module_and_the_role_may_invoke_only_it() -> None:
    data = checks_plan(80, 81)
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    function = exported.template["Resources"]["ChecksFunction"]["Properties"]
    assert function["FunctionName"] == exported.checks_function == "drplan-checked-drill-checks"
    assert function["Code"]["ZipFile"] == open(probes.__file__).read()  # noqa: SIM115 - the module as shipped
    assert function["Timeout"] == 20  # the longest try (10 s requests) and room to start
    role = exported.template["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]
    for document in (exported.policy, role):  # policy.json, and the role the template deploys
        statements = {s["Sid"]: s for s in document["Statement"]}
        assert statements["ChecksFunction"]["Action"] == ["lambda:InvokeFunction"]
        resource = statements["ChecksFunction"]["Resource"]
        arn = resource if isinstance(resource, str) else resource["Fn::Sub"]
        assert arn.endswith(":function:drplan-checked-drill-checks")
    invoked = [s for s in role["Statement"] if "lambda:InvokeFunction" in s["Action"]]
    assert len(invoked) == 1  # that function only
    assert lint_template(exported.template) == []
    (note,) = [n for n in exported.notes if "drplan-checked-drill-checks" in n]
    assert "4 HTTP/TCP check(s)" in note and "--checks-subnet" in note  # healthy, 2 reachable, served
    # No checks, no function.
    bare = export_plan(
        build_plan(plan_data({"a": {"steps": [{"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}]}})),
        "recover",
    )
    assert "ChecksFunction" not in bare.template["Resources"] and bare.checks_function is None
    assert "ChecksSubnetIds" not in bare.template["Parameters"]


def test_a_long_plan_name_gives_a_function_name_lambda_accepts() -> None:
    from drplan.stepfunctions.checks import checks_function_name

    plan = build_plan(plan_data({"a": {"steps": [{"id": "w", "uses": "wait"}]}}, name="x" * 60))
    name = checks_function_name(plan, "recover")
    assert len(name) == 64 and name.endswith("-checks")
    other = build_plan(plan_data({"a": {"steps": [{"id": "w", "uses": "wait"}]}}, name="x" * 59 + "y"))
    assert checks_function_name(other, "recover") != name
    # A plan name may hold dots (the schema allows them); a function name may not.
    dotted = build_plan(plan_data({"a": {"steps": [{"id": "w", "uses": "wait"}]}}, name="status.page"))
    assert checks_function_name(dotted, "drill") == "drplan-status-page-drill-checks"
    for name in (checks_function_name(p, "drill") for p in (plan, other, dotted)):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name), name


def test_one_try_of_the_function_against_what_it_is_given() -> None:
    assert probes.handler({"check": "tcp", "params": {"host": "127.0.0.1", "port": "eighty"}}) == {
        "ok": False,
        "refused": "port 'eighty' is not a number",
    }
    port = closed_port()
    answer = probes.handler({"check": "tcp", "params": {"host": "127.0.0.1", "port": port}})
    assert answer["ok"] is False and answer["outputs"] == {"address": f"127.0.0.1:{port}"}
    refused = probes.handler(
        {"check": "http", "params": {"url": "http://x.example/", "headers": {"a b": "1"}}}
    )
    assert refused == {"ok": False, "refused": "header 'a b' is not an HTTP header name"}


@pytest.mark.parametrize("in_vpc", [False, True])
def test_deploy_creates_the_checks_function_in_the_subnets_given(
    in_vpc: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drplan.cli.sfn import COMMANDS
    from drplan.stepfunctions.deploy import deploy_stack

    deploy = COMMANDS[0]
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    plan = tmp_path / "plan.json"
    data = checks_plan(80, 81)
    for restoring in ("carts", "files"):  # checks only: a template small enough to send inline
        del data["services"][restoring]
    plan.write_text(json.dumps(data), encoding="utf-8")
    with mock_aws():
        args = [str(plan), "--stack-name", "checked"]
        if in_vpc:
            ec2 = boto3.client("ec2", region_name=REGION)
            vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
            group = ec2.create_security_group(GroupName="checks", Description="checks", VpcId=vpc)["GroupId"]
            args += ["--checks-subnet", subnet, "--checks-security-group", group]
        result = CliRunner().invoke(deploy, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        function = boto3.client("lambda", region_name=REGION).get_function(
            FunctionName="drplan-checked-recover-checks"
        )["Configuration"]
        # Deployed again without the options: the update keeps the network the stack was given
        # (moto's CloudFormation does not update a function's VPC either way: what is sent counts).
        cfn = boto3.client("cloudformation", region_name=REGION)
        sent: list[dict[str, Any]] = []
        cfn.meta.events.register(
            "provide-client-params.cloudformation.UpdateStack", lambda params, **_: sent.append(params)
        )
        deploy_stack(cfn, export_plan(build_plan(data), "recover"), "checked", delay=0)
    (update,) = sent
    kept = {p["ParameterKey"]: p for p in update["Parameters"]}
    assert function["Handler"] == "index.handler" and function["Runtime"] == "python3.12"
    if in_vpc:
        assert function["VpcConfig"]["SubnetIds"] == [subnet]
        assert function["VpcConfig"]["SecurityGroupIds"] == [group]
        for key in ("ChecksSubnetIds", "ChecksSecurityGroupIds"):
            assert kept[key] == {"ParameterKey": key, "UsePreviousValue": True}
    else:
        assert not function.get("VpcConfig", {}).get("SubnetIds")
        assert "ChecksSubnetIds" not in kept  # the default: outside any VPC, as before


def test_deploy_refuses_network_options_it_cannot_use(tmp_path: Path) -> None:
    from drplan.cli.sfn import COMMANDS

    deploy = COMMANDS[0]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(checks_plan(80, 81)), encoding="utf-8")
    half = CliRunner().invoke(deploy, [str(plan), "--stack-name", "x", "--checks-subnet", "subnet-1"])
    assert half.exit_code == 2 and "go together" in half.output
    bare = tmp_path / "bare.json"
    bare.write_text(
        json.dumps(plan_data({"a": {"steps": [{"id": "w", "uses": "wait", "with": {"duration": "PT1S"}}]}})),
        encoding="utf-8",
    )
    useless = CliRunner().invoke(
        deploy, [str(bare), "--stack-name", "x", "--checks-subnet", "s", "--checks-security-group", "g"]
    )
    assert useless.exit_code == 2 and "the plan has no HTTP or TCP checks" in useless.output


@pytest.mark.slow
def test_drplan_start_follows_the_checks_into_the_run_report(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks' records, as `drplan start` reads them from the history: the report of a drill
    run by Step Functions has the check's outputs (the drill copy's name in the URL it asked)."""
    from drplan.cli.sfn import COMMANDS
    from drplan.pipeline import load_plan

    start = COMMANDS[1]
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    data = checks_plan(service.port, closed_port())
    for failing in ("ledger", "reports", "files"):
        del data["services"][failing]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    state = tmp_path / "state"
    plan, _ = load_plan(str(path))
    exported = export_plan(plan, "drill", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=AWS), moto_runs_lambda_code():
        seed()
        deploy_checks_function(exported.template)
        machine = boto3.client("stepfunctions", region_name=REGION).create_state_machine(
            name="drplan-checked-drill",
            definition=json.dumps(exported.definition),
            roleArn="arn:aws:iam::123456789012:role/drplan",
        )["stateMachineArn"]
        result = CliRunner().invoke(
            start,
            [str(path), "--engine", "stepfunctions", "--state-machine", machine, "--poll-interval", "0.2",
             "--run-id", "0a1b2c3d", "--state-dir", str(state)],
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "carts.healthy succeeded" in result.output and "PASSED: drill 0a1b2c3d" in result.output
    # Each failed try is said as the local check says it.
    assert "carts.healthy try 1: status 503, expected 200/204" in result.output
    assert "carts.healthy try 2: status 503, expected 200/204" in result.output
    assert "carts.healthy try 3" not in result.output  # the third passed
    report = json.loads((state / "runs" / "0a1b2c3d" / "report" / "report.json").read_text(encoding="utf-8"))
    steps = {s["key"]: s for s in report["steps"]}
    url = f"http://127.0.0.1:{service.port}/health?table=carts-restored-drill-0a1b2c3d"
    assert steps["carts.healthy"]["outputs"] == {"status": 200, "url": url}
    assert steps["carts.reachable"]["outputs"] == {"address": f"127.0.0.1:{service.port}"}
    assert service.paths == ["/health?table=carts-restored-drill-0a1b2c3d"] * 3


def test_a_try_that_outlasts_the_functions_deadline_is_a_failed_try() -> None:
    """Lambda's context says how long the function may still run: a try still connecting near the
    end is answered as failed (the state machine tries again), not left to time the function out."""
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers the request
    port = listener.getsockname()[1]

    class Context:
        def __init__(self, seconds: float) -> None:
            self.deadline = time.monotonic() + seconds

        def get_remaining_time_in_millis(self) -> int:
            return int((self.deadline - time.monotonic()) * 1000)

    event = {"check": "http", "params": {"url": f"http://127.0.0.1:{port}/"}, "request_timeout": 30}
    started = time.monotonic()
    answer = probes.handler(event, Context(5))
    took = time.monotonic() - started
    listener.close()
    assert answer == {"ok": False, "seen": "no answer within 2s (the try was given up)"}
    assert 1.5 < took < 4
