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
from drplan.actions import registry
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
    monkeypatch.setattr(drplan_schema, "is_valid", lambda data, **_: False)
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
            "`with.every` must be an ISO 8601 duration such as PT30M or P1DT2H (did you mean `PT5M`?)",
        ),
        ("DR105", "/services/a/steps/0/with/size", "`with.size` must be at least 1"),
    ]


# --- integers are written without a fraction -------------------------------------------------------


def test_stock_json_schema_counts_one_point_zero_as_an_integer() -> None:
    # Documents why drplan redefines "integer" for the explaining validator: `range(1.0)` fails.
    plan = minimal()
    plan["services"]["db"]["steps"][0]["retries"] = 1.0
    assert jsonschema.Draft202012Validator(plan_schema()).is_valid(plan)
    assert drplan_schema._fast_validator().is_valid(plan)  # jsonschema-rs too: hence the reader's flag
    assert not is_valid(plan)
    (finding,) = validate_schema(plan, "p.json")
    assert (finding.code, finding.pointer) == ("DR103", "/services/db/steps/0/retries")
    assert finding.message == "step `restore` of service `db`: `retries` must be an integer: write 1, not 1.0"


def test_the_fast_path_trusts_the_readers_flag() -> None:
    plan = minimal()
    plan["services"]["db"]["steps"][0]["retries"] = 1.0
    assert is_valid(plan, integral_floats=False)  # what jsonschema-rs alone says
    assert not is_valid(plan, integral_floats=True)
    plan["services"]["db"]["steps"][0]["retries"] = 1
    assert is_valid(plan, integral_floats=True)  # a 1.0 elsewhere (a plugin's free-form parameter)


@pytest.mark.parametrize(
    ("value", "pointer", "words"),
    [
        (200.0, "/services/db/steps/1/with/expect_status", "must be an integer: write 200, not 200.0"),
        (
            [200, 204.0],
            "/services/db/steps/1/with/expect_status/1",
            "must be an integer: write 204, not 204.0",
        ),
        (700, "/services/db/steps/1/with/expect_status", "`with.expect_status` must be at most 599"),
        ([99], "/services/db/steps/1/with/expect_status/0", "`with.expect_status[0]` must be at least 100"),
        ("200", "/services/db/steps/1/with/expect_status", "must be an HTTP status code or a list of them"),
    ],
)
def test_any_of_with_a_phrase_says_the_range_when_only_the_range_is_wrong(
    value: Any, pointer: str, words: str
) -> None:
    plan = minimal()
    plan["services"]["db"]["steps"].append(
        {"id": "up", "uses": "check.http", "with": {"url": "https://x.example.com", "expect_status": value}}
    )
    (finding,) = validate_schema(plan, "p.json")
    assert finding.pointer == pointer
    assert words in finding.message


@pytest.mark.parametrize(
    ("port", "code", "words"),
    [
        (70000, "DR105", "`with.port` must be at most 65535"),
        (0, "DR105", "`with.port` must be at least 1"),
        ("5432", "DR104", "must be an integer or a ${service.step.output} reference"),
        (5432.0, "DR103", "must be an integer: write 5432, not 5432.0"),
    ],
)
def test_a_number_or_reference_out_of_range_is_told_the_range(port: Any, code: str, words: str) -> None:
    plan = minimal()
    plan["services"]["db"]["steps"].append(
        {"id": "up", "uses": "check.tcp", "with": {"host": "x", "port": port}}
    )
    (finding,) = validate_schema(plan, "p.json")
    assert (finding.code, finding.pointer) == (code, "/services/db/steps/1/with/port")
    assert words in finding.message


def test_a_plugin_parameter_written_one_point_zero_is_reported() -> None:
    schema = {"type": "object", "properties": {"size": {"type": "integer"}}}
    assert validate_against({"size": 3}, schema, "/w", "p.json", None) == []
    (finding,) = validate_against({"size": 3.0}, schema, "/w", "p.json", None, subject=False)
    assert (finding.code, finding.message) == ("DR103", "`w.size` must be an integer: write 3, not 3.0")


# --- words for people ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("1h", "(did you mean `PT1H`?)"),
        ("30m", "(did you mean `PT30M`?)"),
        ("1h30m", "(did you mean `PT1H30M`?)"),
        ("90 minutes", "(did you mean `PT1H30M`?)"),
        ("2d", "(did you mean `P2D`?)"),
        ("pt1h", "(did you mean `PT1H`? write it in capitals)"),
        ("01:30", "(did you mean `PT1H30M`?)"),
        ("P1M", "months and years are not allowed, because their length varies (for 1 minute write `PT1M`"),
        ("P1Y", "months and years are not allowed, because their length varies; count in days instead"),
        (300, "(did you mean `PT5M`? a bare number is not a duration)"),
    ],
)
def test_durations_that_are_not_iso_8601_get_a_suggestion(value: Any, hint: str) -> None:
    plan = minimal()
    plan["services"]["db"]["steps"][0]["estimate"] = value
    (finding,) = validate_schema(plan, "p.json")
    assert finding.pointer == "/services/db/steps/0/estimate"
    assert hint in finding.message


def test_the_did_you_mean_of_an_action_ignores_case() -> None:
    plan = minimal()
    plan["services"]["db"]["steps"][0]["uses"] = "AWS.DynamoDB.Restore_Backup"
    (finding,) = validate_schema(plan, "p.json")
    assert finding.message.endswith(
        "(did you mean `aws.dynamodb.restore_backup`? action names are lowercase)"
    )
    plan["services"]["db"]["steps"][0]["uses"] = "AWS.DynamoDB.Restore_Bakup"
    (finding,) = validate_schema(plan, "p.json")
    assert finding.message.endswith("(did you mean `aws.dynamodb.restore_backup`?)")


def test_long_ids_and_keys_are_shortened_in_messages() -> None:
    plan = minimal()
    plan["services"]["x" * 10_000] = {"steps": [{"id": "y" * 10_000, "uses": "check.http", "with": {}}]}
    plan["z" * 10_000] = 1
    findings = validate_schema(plan, "p.json")
    assert len(findings) == 4  # the service id, the step id, the missing url, the unknown property
    for finding in findings:
        assert len(finding.message) < 300, finding.message
        assert "…(10000 characters)" in finding.message


def test_run_settings() -> None:
    plan = minimal()
    plan["run"] = {"parallelism": 16, "state": "s3://my-bucket/drplan/shop"}
    assert validate_schema(plan, "p.json") == []
    plan["run"] = {"parallelism": 257, "state": "/var/drplan", "parallel": 2}
    assert sorted((d.code, d.pointer) for d in validate_schema(plan, "p.json")) == [
        ("DR102", "/run/parallel"),
        ("DR104", "/run/state"),
        ("DR105", "/run/parallelism"),
    ]


@pytest.mark.parametrize("action", sorted(registry()), ids=str)
def test_a_null_with_is_a_type_finding_for_every_action(action: str) -> None:
    """`with: null` (found by the mutation property test) is one DR103, never the generic DR100 of a
    conditional rule (`if`/`then`) that a non-object satisfies vacuously."""
    data = json.loads((ROOT / "plans" / "status-page.json").read_text(encoding="utf-8"))
    step = data["services"][next(iter(data["services"]))]["steps"][0]
    step["uses"], step["with"] = action, None
    step.pop("drill_with", None)
    findings = [(d.code, d.pointer) for d in validate_schema(data, "p.json")]
    assert findings == [("DR103", "/services/incidents/steps/0/with")], findings


def test_iops_on_a_volume_type_that_has_none_is_said_at_iops() -> None:
    data = json.loads((ROOT / "plans" / "webshop.json").read_text(encoding="utf-8"))
    volume = data["services"]["media"]["steps"][0]["with"]
    volume.update(volume_type="gp2", iops=3000)
    (finding,) = validate_schema(data, "p.json")
    assert (finding.code, finding.pointer) == ("DR104", "/services/media/steps/0/with/iops")
    assert finding.message.endswith(
        "`with.iops` can be set only for gp3, io1 and io2 volumes (IOPS of gp2, st1, sc1 and standard volumes follow their size)"
    )
