"""Every ``--format`` of ``drplan validate``: text, json, sarif, github, junit."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import DATA, FIXTURES, ROOT, Invoke
from junitparser import Error, Failure, JUnitXml, Skipped

from drplan.diagnostics import RULES
from drplan.report.findings import escape_data, escape_property

CYCLE = FIXTURES / "invalid" / "dr207-service-cycle" / "plan.json"
WARNING_ONLY = FIXTURES / "invalid" / "dr306-timeout-below-estimate" / "plan.json"
UNKNOWN_AFTER = FIXTURES / "invalid" / "dr208-unknown-after" / "plan.json"  # 2 errors and a warning
DUPLICATES = FIXTURES / "invalid" / "dr002-duplicate-keys" / "plan.json"
VALID = FIXTURES / "valid" / "minimal.json"

TEXT_LINE = re.compile(
    r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+): "
    r"(?P<severity>error|warning|note) (?P<code>DR\d{3}) (?P<message>.+)$"
)


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, as CI does: paths in reports are relative to it."""
    monkeypatch.chdir(ROOT)


# --- text -----------------------------------------------------------------------------------------


def test_text_is_one_line_per_finding_then_notes_then_a_summary(validate_cli: Invoke, at_root: None) -> None:
    result = validate_cli(rel(CYCLE))
    assert result.exit_code == 1
    f = rel(CYCLE)
    assert result.output == (
        f"{f}:25:9: error DR207 dependency cycle: services depend on each other in a loop, so none of them "
        "can start: api → db → queue → api\n"
        f"  {f}:25:9: note: `db` depends on `api`\n"
        f"  {f}:40:9: note: `queue` depends on `db`\n"
        f"  {f}:10:9: note: `api` depends on `queue`\n"
        "1 error, 0 warnings in 1 plan (1 of 1 invalid)\n"
    )


def test_text_lines_parse_as_file_line_col_severity_code_message(validate_cli: Invoke, at_root: None) -> None:
    plans = [rel(case / "plan.json") for case in sorted((FIXTURES / "invalid").iterdir())]
    result = validate_cli(*plans)
    lines = result.output.splitlines()
    findings = [line for line in lines[:-1] if not line.startswith("  ")]
    assert len(findings) > 40
    for line in findings:
        match = TEXT_LINE.match(line)
        assert match, line
        assert match["file"] in plans and int(match["line"]) >= 1 and int(match["col"]) >= 1
        assert match["code"] in RULES
    n = len(plans)
    assert re.fullmatch(rf"\d+ errors, \d+ warnings in {n} plans \(\d+ of {n} invalid\)", lines[-1])


def test_text_colour_only_when_asked(validate_cli: Invoke, at_root: None) -> None:
    coloured = validate_cli("--color", rel(UNKNOWN_AFTER)).output
    assert "\x1b[31merror\x1b[0m DR208" in coloured
    assert "\x1b[33mwarning\x1b[0m DR206" in coloured
    assert "\x1b[" not in validate_cli(rel(UNKNOWN_AFTER)).output  # not a terminal: no colour by default
    assert "\x1b[" not in validate_cli("--no-color", rel(UNKNOWN_AFTER)).output


def key_line(text: str, fragment: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_control_characters_in_plan_keys_cannot_break_lines_or_colour_the_terminal(
    validate_cli: Invoke,
) -> None:
    plan = json.loads(VALID.read_text())
    plan["bad\n\x1b[31mkey"] = 1
    text = json.dumps(plan, indent=2)
    result = validate_cli("-", input=text)
    assert result.exit_code == 1
    line = key_line(text, '"bad\\n')
    assert (
        result.output.splitlines()[0]
        == f"<stdin>:{line}:3: error DR102 `bad\\n\\x1b[31mkey` is not a known property"
    )
    assert len(result.output.splitlines()) == 2


# --- json -----------------------------------------------------------------------------------------


def test_json_envelope(validate_cli: Invoke, at_root: None) -> None:
    result = validate_cli("--format", "json", rel(UNKNOWN_AFTER), rel(VALID))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["format_version"] == "1.0"
    assert (report["valid"], report["error_count"], report["warning_count"]) == (False, 2, 1)
    assert report["files"] == [
        {
            "path": rel(UNKNOWN_AFTER),
            "sha256": hashlib.sha256(UNKNOWN_AFTER.read_bytes()).hexdigest(),
            "valid": False,
            "error_count": 2,
            "warning_count": 1,
        },
        {
            "path": rel(VALID),
            "sha256": hashlib.sha256(VALID.read_bytes()).hexdigest(),
            "valid": True,
            "error_count": 0,
            "warning_count": 0,
        },
    ]
    first = report["diagnostics"][1]
    assert first == {
        "severity": "error",
        "code": "DR208",
        "rule": "unknown-after",
        "summary": RULES["DR208"].summary,
        "message": "step `ready` of service `db` waits for `restor`, which is not a step of the plan "
        "(did you mean `restore`?)",
        "file": rel(UNKNOWN_AFTER),
        "pointer": "/services/db/steps/1/after/0",
        # `"restor"` with its quotes: 8 characters, the end is exclusive.
        "range": {
            "filename": rel(UNKNOWN_AFTER),
            "start": {"line": 27, "column": 13, "offset": first["range"]["start"]["offset"]},
            "end": {"line": 27, "column": 21, "offset": first["range"]["start"]["offset"] + 8},
        },
    }
    text = UNKNOWN_AFTER.read_text()
    assert text[first["range"]["start"]["offset"] : first["range"]["end"]["offset"]] == '"restor"'


def test_json_related_locations(validate_cli: Invoke, at_root: None) -> None:
    (cycle,) = json.loads(validate_cli("--format", "json", rel(CYCLE)).stdout)["diagnostics"]
    assert [(r["pointer"], r["range"]["start"]["line"]) for r in cycle["related"]] == [
        ("/services/db/depends_on/0", 25),
        ("/services/queue/depends_on/0", 40),
        ("/services/api/depends_on/0", 10),
    ]


def test_json_strict_and_unreadable(validate_cli: Invoke, tmp_path: Path) -> None:
    strict = json.loads(validate_cli("--format", "json", "--strict", str(WARNING_ONLY)).stdout)
    assert (strict["valid"], strict["files"][0]["valid"], strict["warning_count"]) == (False, False, 1)
    missing = tmp_path / "missing.json"
    result = validate_cli("--format", "json", str(missing))
    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert report["files"] == [
        {"path": str(missing), "sha256": None, "valid": False, "error_count": 1, "warning_count": 0}
    ]
    assert [(d["code"], d["pointer"], d["range"]) for d in report["diagnostics"]] == [("DR004", None, None)]


# --- SARIF 2.1.0 ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((DATA / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def sarif(validate_cli: Invoke, validator: jsonschema.Draft7Validator, *args: str) -> dict[str, Any]:
    result = validate_cli("--format", "sarif", *args)
    assert result.exit_code in (0, 1), result.output
    log: dict[str, Any] = json.loads(result.stdout)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    return log


def test_sarif_is_valid_against_the_published_schema(
    validate_cli: Invoke, sarif_validator: jsonschema.Draft7Validator, at_root: None
) -> None:
    plans = [rel(case / "plan.json") for case in sorted((FIXTURES / "invalid").iterdir())]
    log = sarif(validate_cli, sarif_validator, *plans, rel(VALID))
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    assert run["tool"]["driver"]["name"] == "drplan"
    assert len(run["results"]) > 40


def test_sarif_uris_are_relative_to_srcroot(
    validate_cli: Invoke, sarif_validator: jsonschema.Draft7Validator, at_root: None
) -> None:
    (run,) = sarif(validate_cli, sarif_validator, rel(CYCLE), rel(VALID))["runs"]
    assert run["originalUriBaseIds"] == {"%SRCROOT%": {"uri": ROOT.as_uri() + "/"}}
    assert [a["location"] for a in run["artifacts"]] == [
        {"uri": rel(CYCLE), "uriBaseId": "%SRCROOT%"},
        {"uri": rel(VALID), "uriBaseId": "%SRCROOT%"},
    ]
    (result,) = run["results"]
    location = result["locations"][0]
    assert location["physicalLocation"]["artifactLocation"] == {"uri": rel(CYCLE), "uriBaseId": "%SRCROOT%"}
    assert location["physicalLocation"]["region"] == {
        "startLine": 25,
        "startColumn": 9,
        "endLine": 25,
        "endColumn": 14,
    }
    assert location["logicalLocations"] == [
        {"fullyQualifiedName": "/services/db/depends_on/0", "kind": "member"}
    ]
    assert [r["physicalLocation"]["region"]["startLine"] for r in result["relatedLocations"]] == [25, 40, 10]


def test_sarif_uris_are_percent_encoded(
    validate_cli: Invoke,
    sarif_validator: jsonschema.Draft7Validator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    odd = tmp_path / "my plans" / "dr #1 100%.json"
    odd.parent.mkdir()
    shutil.copy(WARNING_ONLY, odd)
    monkeypatch.chdir(tmp_path)
    (run,) = sarif(validate_cli, sarif_validator, "my plans/dr #1 100%.json")["runs"]
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": "my%20plans/dr%20%231%20100%25.json",
        "uriBaseId": "%SRCROOT%",
    }
    # Outside the base directory: an absolute file URI.
    monkeypatch.chdir(ROOT)
    (run,) = sarif(validate_cli, sarif_validator, str(odd))["runs"]
    assert run["artifacts"] == [{"location": {"uri": odd.as_uri()}}]


def test_sarif_rules_only_for_codes_that_fired(
    validate_cli: Invoke, sarif_validator: jsonschema.Draft7Validator, at_root: None
) -> None:
    (run,) = sarif(validate_cli, sarif_validator, rel(UNKNOWN_AFTER), rel(CYCLE))["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["DR206", "DR207", "DR208"]
    assert rules[0]["name"] == "undeclared-dependency"
    assert rules[0]["defaultConfiguration"] == {"level": "warning"}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    assert sorted(r["level"] for r in run["results"]) == ["error", "error", "error", "warning"]
    (clean,) = sarif(validate_cli, sarif_validator, rel(VALID))["runs"]
    assert (clean["tool"]["driver"]["rules"], clean["results"]) == ([], [])


def test_sarif_fingerprints_survive_lines_moving(
    validate_cli: Invoke,
    sarif_validator: jsonschema.Draft7Validator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    names = []
    for source in (UNKNOWN_AFTER, DUPLICATES, CYCLE):
        name = source.parent.name + ".json"
        shutil.copy(source, tmp_path / name)
        names.append(name)

    def findings() -> list[tuple[str, str, int]]:
        (run,) = sarif(validate_cli, sarif_validator, *names)["runs"]
        return [
            (
                r["ruleId"],
                r["partialFingerprints"]["drplanFindingHash/v1"],
                r["locations"][0]["physicalLocation"]["region"]["startLine"],
            )
            for r in run["results"]
        ]

    before = findings()
    for name in names:  # a blank line at the top moves every finding one line down
        path = tmp_path / name
        path.write_bytes(b"\n" + path.read_bytes())
    after = findings()
    assert len(before) == 6  # 3 + 2 + 1
    assert [(code, fp) for code, fp, _ in after] == [(code, fp) for code, fp, _ in before]
    assert [line for _, _, line in after] == [line + 1 for _, _, line in before]
    assert len({fp for _, fp, _ in before}) == len(before)  # and they tell findings apart


def test_sarif_from_standard_input(validate_cli: Invoke, sarif_validator: jsonschema.Draft7Validator) -> None:
    result = validate_cli("--format", "sarif", "-", input=WARNING_ONLY.read_bytes())
    log = json.loads(result.stdout)
    assert not list(sarif_validator.iter_errors(log))
    (run,) = log["runs"]
    assert run["artifacts"] == []
    assert run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "%3Cstdin%3E"


# --- GitHub workflow commands ---------------------------------------------------------------------


def test_github_annotations(validate_cli: Invoke, at_root: None) -> None:
    result = validate_cli("--format", "github", rel(UNKNOWN_AFTER))
    assert result.exit_code == 1
    f = rel(UNKNOWN_AFTER)
    url_line = UNKNOWN_AFTER.read_text().splitlines()[22]
    ref_start = url_line.index("${") + 1  # 1-based column of the reference inside the URL
    ref_end = url_line.index("}", ref_start) + 2  # just after its closing brace
    assert (ref_start, ref_end) == (61, 85)
    assert result.output.splitlines() == [
        f"::warning file={f},line=23,col={ref_start},endLine=23,endColumn={ref_end},"
        "title=DR206 undeclared-dependency::"
        "step `ready` of service `db` uses `${db.restore.table_name}`, but `db.restore` is not upstream "
        "of it through `depends_on` or `after`; drplan will wait for it, but say so in the plan "
        "(add `restore` to the `after` of `ready`)",
        f"::error file={f},line=27,col=13,endLine=27,endColumn=21,title=DR208 unknown-after::"
        "step `ready` of service `db` waits for `restor`, which is not a step of the plan "
        "(did you mean `restore`?)",
        f"::error file={f},line=45,col=13,endLine=45,endColumn=22,title=DR208 unknown-after::"
        "step `healthy` of service `web` waits for `db.redy`, which is not a step of the plan "
        "(did you mean `db.ready`?)",
        "2 errors, 1 warning in 1 plan (1 of 1 invalid)",
    ]


def test_github_escapes_messages_and_properties(
    validate_cli: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = json.loads(VALID.read_text())
    plan["100%\r\nsure"] = 1
    weird = tmp_path / "a:b,c.json"
    text = json.dumps(plan, indent=2)
    weird.write_text(text)
    monkeypatch.chdir(tmp_path)
    result = validate_cli("--format", "github", weird.name)
    line = key_line(text, '"100%')
    # The key "100%\r\nsure" is written with escapes: 14 characters, so the end column is 3 + 14.
    assert result.output.splitlines()[0] == (
        f"::error file=a%3Ab%2Cc.json,line={line},col=3,endLine={line},endColumn=17,"
        "title=DR102 unknown-property::"
        "`100%25%0D%0Asure` is not a known property"
    )


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        ("50% done", "50%25 done", "50%25 done"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("C:\\plans,x.json", "C:\\plans,x.json", "C%3A\\plans%2Cx.json"),
        ("%0A", "%250A", "%250A"),  # escaped once, not decoded by the runner into a newline
    ],
)
def test_github_escape_functions(text: str, data: str, prop: str) -> None:
    assert (escape_data(text), escape_property(text)) == (data, prop)


# --- JUnit ------------------------------------------------------------------------------------------


def junit(validate_cli: Invoke, *args: str, input: str | None = None) -> JUnitXml:
    result = validate_cli("--format", "junit", *args, input=input)
    xml = JUnitXml.fromstring(result.stdout)
    assert isinstance(xml, JUnitXml)
    return xml


def test_junit_a_suite_per_plan_a_case_per_rule(validate_cli: Invoke, at_root: None) -> None:
    xml = junit(validate_cli, rel(UNKNOWN_AFTER), rel(VALID), rel(CYCLE))
    suites = list(xml)
    assert [s.name for s in suites] == [rel(UNKNOWN_AFTER), rel(VALID), rel(CYCLE)]
    for suite in suites:
        cases = list(suite)
        assert [c.name for c in cases] == [f"{code} {rule.name}" for code, rule in RULES.items()]
        assert {c.classname for c in cases} == {suite.name}
        assert suite.tests == len(RULES)
    failed = {s.name: {c.name: c.result for c in s if c.result} for s in suites}
    (dr208,) = failed[rel(UNKNOWN_AFTER)]["DR208 unknown-after"]
    assert isinstance(dr208, Failure)
    assert dr208.message.startswith("2 findings: step `ready` of service `db` waits for `restor`")
    assert dr208.type == "DR208"
    assert f"{rel(UNKNOWN_AFTER)}:45:13: error DR208" in dr208.text
    # Warnings are not failures: they are in the case's output.
    assert "DR206 undeclared-dependency" not in failed[rel(UNKNOWN_AFTER)]
    (dr206,) = [c for c in suites[0] if c.name == "DR206 undeclared-dependency"]
    assert "warning DR206" in dr206.system_out
    assert failed[rel(VALID)] == {}
    assert list(failed[rel(CYCLE)]) == ["DR207 dependency-cycle"]
    assert (suites[0].failures, suites[1].failures, suites[2].failures) == (1, 0, 1)
    assert xml.failures == 2 and xml.errors == 0


def test_junit_strict_fails_warnings(validate_cli: Invoke) -> None:
    (suite,) = junit(validate_cli, "--strict", str(WARNING_ONLY))
    (case,) = [c for c in suite if c.result]
    assert case.name == "DR306 timeout-below-estimate"
    assert isinstance(case.result[0], Failure)
    assert not any(isinstance(r, (Error, Skipped)) for c in suite for r in c.result)


def test_junit_is_well_formed_whatever_the_plan_contains(validate_cli: Invoke) -> None:
    plan = json.loads(VALID.read_text())
    plan['ctrl\x01\x1b<&>"key'] = 1
    (suite,) = junit(validate_cli, "-", input=json.dumps(plan))
    (case,) = [c for c in suite if c.result]
    assert case.result[0].message == '1 finding: `ctrl\\x01\\x1b<&>"key` is not a known property'


# --- every format: ends its last line, and carries a file's internal error ------------------------


@pytest.mark.parametrize(
    "args", [(), ("--color",), ("--format", "github"), ("--strict",), ("--format", "github", "--strict")]
)
def test_the_summary_line_ends_with_a_newline(validate_cli: Invoke, args: tuple[str, ...]) -> None:
    # Without it, a line on stderr after the run (or the shell prompt) would be glued to the summary.
    for plan in (VALID, WARNING_ONLY, CYCLE):
        result = validate_cli(*args, str(plan))
        assert result.stdout.endswith(")\n"), result.stdout
        summary = result.stdout.splitlines()[-1]
        assert re.fullmatch(r"(\x1b\[0m)?\d+ errors?, \d+ warnings? in 1 plan \(.+\)", summary), summary


def crash_on(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    """Make drplan fail (a stand-in for a bug) while it validates ``victim``."""
    from drplan import pipeline

    real = pipeline.validate_file

    def flaky(path: Any, **kwargs: Any) -> Any:
        if Path(path) == victim:
            raise KeyError("services")
        return real(path, **kwargs)

    monkeypatch.setattr(pipeline, "validate_file", flaky)


def test_an_internal_error_is_a_dr000_finding_in_sarif_and_junit(
    validate_cli: Invoke,
    sarif_validator: jsonschema.Draft7Validator,
    monkeypatch: pytest.MonkeyPatch,
    at_root: None,
) -> None:
    crash_on(monkeypatch, Path(rel(VALID)))
    report = sarif(validate_cli, sarif_validator, rel(CYCLE), rel(VALID))
    results = report["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["DR207", "DR000"]  # the other file is still checked
    assert results[1]["level"] == "error"
    region = results[1]["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (1, 1)
    assert "this is a bug in drplan" in results[1]["message"]["text"]
    suites = junit(validate_cli, rel(VALID))
    (suite,) = suites
    failed = [case.name for case in suite if case.result and isinstance(case.result[0], Failure)]
    assert failed == ["DR000 internal-error"]
