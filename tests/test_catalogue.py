"""The action catalogue: schema and registry in step, `drplan actions`, third-party actions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from click.testing import CliRunner

import drplan.actions as actions_module
from drplan.actions import registry
from drplan.actions.base import Action, Handle, Poll, StepContext
from drplan.cli import cli
from drplan.document import read_document
from drplan.errors import UsageError
from drplan.pipeline import validate_document
from drplan.schema import action_schemas


def test_every_schema_action_has_an_implementation_and_back():
    assert set(action_schemas()) == set(registry())
    for name, action in registry().items():
        assert action.params_schema is action_schemas()[name]
        assert action.family in (
            "backup",
            "database",
            "storage",
            "dns",
            "compute",
            "check",
            "manual",
            "control",
        )
        if name.startswith("aws."):
            assert action.iam, f"{name} declares no IAM actions"
            assert type(action).start is not Action.start, f"{name} cannot run"


def test_actions_command_lists_parameters_outputs_and_iam():
    result = CliRunner().invoke(cli, ["actions", "--format", "json"])
    assert result.exit_code == 0
    catalogue = {a["name"]: a for a in json.loads(result.stdout)}
    rds = catalogue["aws.rds.restore_snapshot"]
    assert "rds:RestoreDBInstanceFromDBSnapshot" in rds["iam"]
    assert {"endpoint", "port", "arn"} <= set(rds["outputs"])
    target = next(p for p in rds["parameters"] if p["name"] == "target")
    assert target["required"] is True
    text = CliRunner().invoke(cli, ["actions", "aws.route53.change_record"])
    assert (
        text.exit_code == 0
        and "route53:ChangeResourceRecordSets" in text.stdout
        and "check.http" not in text.stdout
    )
    unknown = CliRunner().invoke(cli, ["actions", "aws.nope"])
    assert unknown.exit_code == 2 and "unknown action" in unknown.output


class FlushCache(Action):
    """A third-party action, as a plugin package would ship it."""

    name = "acme.cache.flush"
    family = "control"
    summary = "Flush a cache"
    outputs = {"flushed": "number of keys flushed"}
    params_schema = {
        "type": "object",
        "required": ["cluster"],
        "additionalProperties": False,
        "properties": {"cluster": {"type": "string", "description": "Cache cluster."}},
    }

    def start(self, ctx: StepContext) -> Handle:
        return {"cluster": ctx.params["cluster"]}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        return Poll.finished()

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"flushed": 42}


class FakeEntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self._target = name, f"acme_drplan:{name}", target

    def load(self) -> object:
        return self._target


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        actions_module, "_entry_points", lambda: [FakeEntryPoint("acme.cache.flush", FlushCache)]
    )
    registry.cache_clear()
    yield
    registry.cache_clear()


def plan_using(params: Mapping[str, Any], output: str = "flushed") -> bytes:
    return json.dumps(
        {
            "drplan": 1,
            "name": "p",
            "objectives": {"rto": "PT1H"},
            "services": {
                "cache": {
                    "steps": [
                        {"id": "flush", "uses": "acme.cache.flush", "with": dict(params), "estimate": "PT1M"},
                        {
                            "id": "check",
                            "uses": "check.tcp",
                            "estimate": "PT1M",
                            "with": {"host": f"${{cache.flush.{output}}}", "port": 1},
                        },
                    ]
                }
            },
        }
    ).encode()


def test_a_plugin_action_from_the_entry_point_group_is_known_and_checked(plugin):
    ok = validate_document(read_document("p.json", data=plan_using({"cluster": "sessions"})))
    assert ok.errors == []
    bad = validate_document(read_document("p.json", data=plan_using({"clusterr": "sessions"}, output="nope")))
    codes = sorted(d.code for d in bad.errors)
    assert codes == ["DR205", "DR211", "DR211"], [
        d.message for d in bad.errors
    ]  # unknown output, unknown + missing param


def test_a_plugin_action_runs_through_the_engine(plugin):
    from tests.runs import one_step, run_plan

    run = run_plan(one_step("acme.cache.flush", {"cluster": "sessions"}))
    assert run.record().status == "succeeded" and run.record().outputs == {"flushed": 42}


def test_a_broken_plugin_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch):
    class Broken(FakeEntryPoint):
        def load(self) -> object:
            raise ImportError("No module named 'acme_drplan'")

    monkeypatch.setattr(actions_module, "_entry_points", lambda: [Broken("acme.cache.flush", None)])
    registry.cache_clear()
    try:
        with pytest.raises(UsageError, match=r"acme\.cache\.flush.*acme_drplan"):
            registry()
    finally:
        registry.cache_clear()
