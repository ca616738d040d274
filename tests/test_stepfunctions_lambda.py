"""``aws.lambda.invoke`` exported to Step Functions (``arn:aws:states:::lambda:invoke``), executed in
moto's interpreter against moto's Lambda in its simple mode (no Docker: a function answers with
the payload it was sent), and compared with drplan's own run of the same plan: the same
invocations (function and payload), the same outputs flowing into later steps, the same message
when the function fails (``FunctionError``) or its result lacks an output, the same undo in a
drill's cleanup."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

from drplan.model import build_plan
from drplan.stepfunctions import ExportRefused, export_plan
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    lint_template,
    records,
    statuses,
)

AWS = {"lambda": {"use_docker": False}, "stepfunctions": {"execute_state_machine": True}}
ERROR = {"errorMessage": "no database to migrate", "errorType": "RuntimeError"}


@pytest.fixture
def invocations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Any]]]:
    """Every invocation moto's Lambda answers (function, payload); a function named ``broken*``
    raises (``FunctionError: Unhandled``, the error payload Lambda's runtimes send)."""
    calls: list[tuple[str, Any]] = []
    original = LambdaSimpleBackend.invoke

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> Any:
        name = function_name.rsplit(":", 1)[-1] if ":function:" in function_name else function_name
        calls.append((name, json.loads(body or "null")))
        if name.startswith("broken"):
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(ERROR).encode()
        return original(self, function_name, qualifier, body, headers, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    yield calls


def functions(*names: str) -> None:
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("index.py", "def handler(event, context):\n    return event\n")
    client = boto3.client("lambda", region_name=REGION)
    for name in names:
        client.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": code.getvalue()},
        )


def invoke(step: str, function: str, **params: Any) -> dict[str, Any]:
    return {"id": step, "uses": "aws.lambda.invoke", "with": {"function": function, **params}}


def app() -> dict[str, Any]:
    """An invocation whose outputs feed the next one (whole references keep their type, a reference
    inside a string becomes text), one whose result lacks two outputs, and a function that raises
    with a step after it."""
    return plan_data(
        {
            "app": {
                "steps": [
                    invoke(
                        "prepare",
                        "prepare",
                        payload={"endpoint": "db.example.com", "port": 5432},
                        outputs=["endpoint", "port"],
                    ),
                    invoke(
                        "connect",
                        "prepare",
                        payload={"host": "${app.prepare.endpoint}", "port": "${app.prepare.port}"},
                        outputs=["host", "port"],
                        undo_payload={"drop": "${app.prepare.endpoint}"},
                    ),
                ]
            },
            "partial": {"steps": [invoke("check", "prepare", payload={"a": 1}, outputs=["a", "b", "c"])]},
            "migrate": {
                "steps": [
                    invoke("run", "broken-migrate", payload={"to": "v2"}),
                    {"id": "after", "uses": "wait", "with": {"duration": "PT1S"}},
                ]
            },
        },
        name="lambdas",
    )


def _by_function(calls: list[tuple[str, Any]]) -> list[str]:
    return sorted(json.dumps(call, sort_keys=True) for call in calls)


@pytest.mark.slow
def test_invocations_outputs_and_function_errors_match_the_local_run(
    invocations: list[tuple[str, Any]],
) -> None:
    data = app()
    with mock_aws(config=AWS):
        functions("prepare", "broken-migrate")
        local = run_plan(data, run_id=RUN_ID)
    expected = {k: r.status for k, r in local.outcome.records.items()}
    assert expected == {
        "app.prepare": "succeeded",
        "app.connect": "succeeded",
        "partial.check": "failed",
        "migrate.run": "failed",
        "migrate.after": "skipped",
    }
    local_calls = _by_function(invocations)
    invocations.clear()
    exported = export_plan(build_plan(data), "recover", options=FAST, history_budget=ONE_MACHINE)
    assert lint_definition(exported.definition) == []
    assert lint_template(exported.template) == []
    with mock_aws(config=AWS):
        functions("prepare", "broken-migrate")
        described = execute(exported.definition, table=exported.coordination_table)
    assert _by_function(invocations) == local_calls  # the same calls with the same payloads
    doc = records(described)
    assert statuses(doc, exported.sids) == expected
    for key in ("app.prepare", "app.connect"):
        assert doc["steps"][exported.sids[key]]["out"] == local.outcome.records[key].outputs
    assert doc["steps"][exported.sids["app.connect"]]["out"] == {"host": "db.example.com", "port": 5432}
    for key in ("partial.check", "migrate.run"):
        assert doc["steps"][exported.sids[key]]["cause"] == local.outcome.records[key].error
    assert (
        local.outcome.records["migrate.run"].error
        == "function broken-migrate failed: RuntimeError: no database to migrate"
    )
    assert local.outcome.records["partial.check"].error == "function prepare did not return b, c"


@pytest.mark.slow
def test_a_drill_invokes_the_undo_where_the_plan_gives_one(invocations: list[tuple[str, Any]]) -> None:
    data = app()
    del data["services"]["migrate"], data["services"]["partial"]
    with mock_aws(config=AWS):
        functions("prepare")
        local = run_plan(data, "drill", run_id=RUN_ID)
        assert local.runner.cleanup() == []  # what drplan drill does after the steps
    assert {r.status for r in local.outcome.records.values()} == {"succeeded"}
    local_calls = _by_function(invocations)
    assert json.dumps(["prepare", {"drop": "db.example.com"}], sort_keys=True) in local_calls  # the undo
    invocations.clear()
    exported = export_plan(build_plan(data), "drill", options=FAST, history_budget=ONE_MACHINE)
    with mock_aws(config=AWS):
        functions("prepare")
        described = execute(exported.definition, table=exported.coordination_table)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    assert _by_function(invocations) == local_calls
    cleanup = records(described)["cleanup"]
    assert cleanup[exported.sids["app.connect"]]["status"] == "removed"
    assert cleanup[exported.sids["app.prepare"]]["status"] == "nothing to undo"


def test_a_function_named_by_a_reference_is_refused() -> None:
    data = plan_data(
        {
            "a": {"steps": [invoke("make", "maker", outputs=["name"])]},
            "b": {"depends_on": ["a"], "steps": [invoke("call", "${a.make.name}")]},
        }
    )
    with pytest.raises(ExportRefused) as refused:
        export_plan(build_plan(data), "recover")
    assert "b.call (aws.lambda.invoke): `function` must be known when the plan is exported" in str(
        refused.value
    )


def test_the_docs_name_every_action_translated_or_refused() -> None:
    """docs/stepfunctions.md: the table of translated actions is the exporter's registry, and with the
    list of refused ones it covers every action drplan has."""
    import re
    from pathlib import Path

    from drplan.actions import registry
    from drplan.stepfunctions.translations import TRANSLATIONS

    text = (Path(__file__).parent.parent / "docs" / "stepfunctions.md").read_text(encoding="utf-8")
    section = text.split("## Which actions are translated", 1)[1].split("\n## ", 1)[0]
    table, refused = section.split("Every other action is refused", 1)
    translated = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", table, re.MULTILINE))
    named = set(
        re.findall(r"`((?:aws|check)\.[a-z0-9_.]+|command)`", refused.split("So are, for any action", 1)[0])
    )
    assert translated == set(TRANSLATIONS)
    everything = set(registry())
    assert named | translated == everything, sorted(everything - named - translated)
    assert not named & translated
