"""The plan schema: a valid Draft 2020-12 schema with a stable $id, documented, shipped, explained."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from conftest import ROOT

from drplan import schema as drplan_schema
from drplan.cli import cli
from drplan.schema import SCHEMA_ID, is_valid, plan_schema, validate_against, validate_schema

SCHEMA_FILE = ROOT / "schemas" / "plan.schema.json"

MINIMAL: dict[str, Any] = {
    "drplan": 1,
    "name": "minimal",
    "objectives": {"rto": "PT1H"},
    "services": {
        "db": {
            "steps": [
                {
                    "id": "restore",
                    "uses": "aws.dynamodb.restore_backup",
                    "with": {"source_table": "orders", "target": "orders-restored"},
                    "estimate": "PT20M",
                }
            ]
        }
    },
}


def minimal() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)


# --- the schema document ------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_has_a_stable_versioned_id() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    # Editors and other tools cache the schema by its $id: it only changes with the format version.
    assert schema["$id"] == "https://drplan.dev/schemas/plan/v1.json"
    assert schema["$id"] == SCHEMA_ID
    assert schema["properties"]["drplan"]["const"] == drplan_schema.FORMAT_VERSION == 1


def _properties(node: Any, path: str, *, conditional: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """(path, schema, inside if/then/else/not) of every entry of every "properties" object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{path}/properties/{name}", prop, conditional
            yield from _properties(
                value, f"{path}/{key}", conditional=conditional or key in ("if", "then", "else", "not")
            )
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _properties(item, f"{path}/{i}", conditional=conditional)


DECLARED = [(p, s) for p, s, conditional in _properties(plan_schema(), "#") if not conditional]
CONDITIONAL = [(p, s) for p, s, conditional in _properties(plan_schema(), "#") if conditional]


def test_the_walk_finds_properties_everywhere() -> None:
    paths = {p for p, _ in DECLARED}
    assert len(paths) > 150
    assert "#/$defs/actions/check.http/properties/body_matches" in paths
    assert "#/$defs/actions/aws.ec2.volume_from_snapshot/properties/attach/properties/device" in paths
    assert "#/$defs/step/properties/drill_with" in paths


@pytest.mark.parametrize(
    ("path", "prop"),
    [pytest.param(p, s, id=p) for p, s in DECLARED],
)
def test_every_property_has_a_description(path: str, prop: Any) -> None:
    assert isinstance(prop, dict)
    assert isinstance(prop.get("description"), str) and prop["description"].strip(), path


def test_conditional_properties_constrain_properties_declared_with_a_description() -> None:
    """Entries under if/then (``uses`` const, ``with`` $ref per action) are not declarations: each
    must name a property the enclosing schema declares, and that declaration carries the text."""
    step = plan_schema()["$defs"]["step"]["properties"]
    for path, _ in CONDITIONAL:
        name = path.rsplit("/", 1)[1]
        if path.startswith("#/$defs/step/"):
            assert name in step and step[name]["description"], path
        else:
            action = path.split("/")[3]
            declared = plan_schema()["$defs"]["actions"][action]["properties"]
            assert name in declared and declared[name]["description"], path
    assert len(CONDITIONAL) > 40


def test_drplan_schema_prints_exactly_the_file(tmp_path: Path) -> None:
    drplan_schema.schema_text.cache_clear()  # as in a fresh process: read the file as it is now
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    assert result.stdout_bytes == SCHEMA_FILE.read_bytes()
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(cli, ["schema", "-o", str(out)])
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_bytes() == SCHEMA_FILE.read_bytes()


@pytest.mark.slow
def test_the_wheel_ships_the_schema_byte_for_byte(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("drplan-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert "drplan/schemas/plan.schema.json" in archive.namelist()
        assert archive.read("drplan/schemas/plan.schema.json") == SCHEMA_FILE.read_bytes()


# --- validating and explaining ---------------------------------------------------------------------


def test_a_valid_plan_has_no_schema_findings() -> None:
    assert is_valid(MINIMAL)
    assert validate_schema(MINIMAL, "p.json") == []


def test_findings_name_the_step_and_the_field() -> None:
    plan = minimal()
    plan["services"]["db"]["steps"][0]["with"]["backup"] = "yesterday"
    (finding,) = validate_schema(plan, "p.json")
    assert (finding.code, finding.pointer) == ("DR104", "/services/db/steps/0/with/backup")
    assert finding.message == (
        "step `restore` of service `db`: `with.backup` must be `latest` or a DynamoDB backup ARN"
    )


def test_any_of_failures_lead_with_the_x_error_phrase() -> None:
    plan = minimal()
    plan["services"]["db"]["steps"].append(
        {"id": "up", "uses": "check.http", "with": {"url": "https://x.example.com", "expect_status": "200"}}
    )
    (finding,) = validate_schema(plan, "p.json")
    assert finding.code == "DR104"
    assert (
        finding.message
        == "step `up` of service `db`: `with.expect_status` must be an HTTP status code or a list of them"
    )


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("aws",), {"account_id": "123456789012\n"}),  # Python's "$" matches before a final newline
        (("name",), "minimal\n"),
        (("objectives", "rto"), "PT1H\n"),
        # Arabic-Indic digits are \d in Python, not in ECMA-262
        (
            ("aws",),
            {"account_id": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662"},
        ),
        (("objectives", "rto"), "PT\u0661H"),  # the same, in a pattern with look-ahead
    ],
)
def test_patterns_mean_what_ecma_262_says_in_both_validators(path: tuple[str, ...], value: Any) -> None:
    """Stock jsonschema (Python regex semantics) accepts these values; JSON Schema says patterns
    are ECMA-262, where they do not match. Both of drplan's validators must reject them, and the
    explanation must say where: before the fix the plan passed without a word."""
    plan = minimal()
    target = plan
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert not is_valid(plan)
    findings = validate_schema(plan, "p.json")
    assert [f.code for f in findings] == ["DR104"]
    assert findings[0].pointer.startswith("/" + path[0])


def test_stock_jsonschema_would_have_accepted_a_trailing_newline() -> None:
    # Documents why drplan extends the explaining validator instead of using jsonschema as it is.
    plan = minimal()
    plan["aws"] = {"account_id": "123456789012\n"}
    assert jsonschema.Draft202012Validator(plan_schema()).is_valid(plan)


def test_when_the_validators_disagree_the_plan_is_not_silently_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drplan_schema, "is_valid", lambda data: False)
    (finding,) = validate_schema(MINIMAL, "p.json")
    assert (finding.code, finding.pointer, finding.file) == ("DR100", "", "p.json")
    assert "does not match the plan schema" in finding.message


def test_validate_against_a_plugin_schema_with_its_own_defs() -> None:
    schema = {
        "type": "object",
        "properties": {"size": {"$ref": "#/$defs/size"}, "every": {"$ref": "#/$defs/duration"}},
        "$defs": {"size": {"type": "integer", "minimum": 1}},
    }
    ok = validate_against({"size": 3, "every": "PT5M"}, schema, "/services/a/steps/0/with", "p.json", None)
    assert ok == []
    bad = validate_against(
        {"size": 0, "every": "5m"}, schema, "/services/a/steps/0/with", "p.json", None, subject=False
    )
    assert sorted((d.code, d.pointer, d.message) for d in bad) == [
        (
            "DR104",
            "/services/a/steps/0/with/every",
            "`with.every` must be an ISO 8601 duration such as PT30M or P1DT2H",
        ),
        ("DR105", "/services/a/steps/0/with/size", "`with.size` must be at least 1"),
    ]
