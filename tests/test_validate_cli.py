"""``drplan validate``: fixture plans with the findings they must give, exit codes, globs, stdin.

Fixture plans live in folders and are discovered by listing them (check-jsonschema's example-files
pattern): ``fixtures/valid/*.json`` must give nothing at all; each ``fixtures/invalid/<case>/``
holds a ``plan.json`` and an ``expected.json`` listing every finding it must give, in output
order: ``{code, severity, pointer, line, column, message_contains?, related?}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_PLANS, FIXTURES, ROOT, Invoke

from drplan.diagnostics import RULES, pointer_tokens
from drplan.pipeline import validate_file

VALID = sorted((FIXTURES / "valid").glob("*.json"))
INVALID = sorted(p for p in (FIXTURES / "invalid").iterdir() if p.is_dir())


def expected_of(case: Path) -> list[dict[str, Any]]:
    expected: list[dict[str, Any]] = json.loads((case / "expected.json").read_text(encoding="utf-8"))
    return expected


def test_fixture_folders_are_complete() -> None:
    assert len(VALID) >= 4 and len(INVALID) >= 30
    for case in INVALID:
        assert sorted(p.name for p in case.iterdir()) == ["expected.json", "plan.json"], case


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_fixture(validate_cli: Invoke, path: Path) -> None:
    result = validate_cli("--strict", str(path))
    assert result.exit_code == 0, result.output
    assert result.output == "0 errors, 0 warnings in 1 plan (all valid)\n"


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.name)
def test_invalid_fixture(validate_cli: Invoke, case: Path) -> None:
    expected = expected_of(case)
    result = validate_cli("--format", "json", str(case / "plan.json"))
    report = json.loads(result.stdout)
    got = report["diagnostics"]

    def where(d: dict[str, Any]) -> tuple[Any, ...]:
        return (
            d["code"],
            d["severity"],
            d["pointer"],
            d["range"]["start"]["line"],
            d["range"]["start"]["column"],
        )

    assert [where(d) for d in got] == [
        (e["code"], e["severity"], e["pointer"], e["line"], e["column"]) for e in expected
    ]
    for d, e in zip(got, expected, strict=True):
        assert e.get("message_contains", "") in d["message"]
        assert d["file"] == str(case / "plan.json")
        related = [
            {
                "pointer": r["pointer"],
                "line": r["range"]["start"]["line"],
                "column": r["range"]["start"]["column"],
                "message": r["message"],
            }
            for r in d.get("related", [])
        ]
        assert related == e.get("related", [])
    has_errors = any(e["severity"] == "error" for e in expected)
    assert result.exit_code == (1 if has_errors else 0), result.output
    if not has_errors:  # warnings only: --strict turns them into a failure
        assert validate_cli("--strict", str(case / "plan.json")).exit_code == 1


def test_every_rule_is_covered_by_a_fixture() -> None:
    fired = {e["code"] for case in INVALID for e in expected_of(case)}
    # DR004 needs a file that cannot be read (test_missing_file_*); DR100 needs the two
    # validators to disagree (test_schema.py::test_when_the_validators_disagree_*); DR000 needs a
    # drplan bug (test_an_internal_error_is_a_dr000_finding_*): no plan can show them.
    untestable = {"DR000", "DR004", "DR100"}
    assert fired | untestable == set(RULES)
    assert not fired & untestable


def _resolve(data: Any, pointer: str) -> tuple[bool, Any]:
    for token in pointer_tokens(pointer):
        if isinstance(data, list) and token.isdigit() and int(token) < len(data):
            data = data[int(token)]
        elif isinstance(data, dict) and token in data:
            data = data[token]
        else:
            return False, None
    return True, data


LOCATED = [case for case in INVALID if any(e["pointer"] is not None for e in expected_of(case))]


@pytest.mark.parametrize("case", LOCATED, ids=lambda p: p.name)
def test_expected_positions_point_at_the_text_they_name(case: Path) -> None:
    """Checks the fixtures themselves, without drplan's source map: at ``line:col`` the file shows
    the key or the value the pointer names."""
    text = (case / "plan.json").read_bytes().decode("utf-8-sig")
    data = json.loads(text)
    lines = text.replace("\r\n", "\n").split("\n")
    for e in expected_of(case):
        exists, value = _resolve(data, e["pointer"])
        if not exists:  # a missing property: shown at its nearest parent
            continue
        at = lines[e["line"] - 1][e["column"] - 1 :]
        key = pointer_tokens(e["pointer"])[-1] if e["pointer"] else None
        wrong_key = e["code"] in ("DR002", "DR102") or (
            e["code"] == "DR104" and "id `" in e["message_contains"]
        )
        if isinstance(value, (dict, list)):
            member = key is not None and not (key.isdigit() and at[:1] in "{[")
            assert at.startswith(json.dumps(key) if member else ("{" if isinstance(value, dict) else "[")), e
        elif wrong_key:  # an unknown, repeated or badly named key is shown at the key
            assert at.startswith(json.dumps(key, ensure_ascii=False)), e
        elif e["code"] in ("DR204", "DR205", "DR206", "DR209") or (
            e["code"] == "DR309" and isinstance(value, str) and "${" in value
        ):  # at the `${...}` inside the string (or the key), up to its `}` or, unclosed, the end
            assert at.startswith("${"), e
            written = at[: at.index("}") + 1] if "}" in at else at[: at.index('"')]
            assert written in value or written in key, e
        elif isinstance(value, float):  # 4.43e2 is written as it is, not as json.dumps would
            number = re.match(r"-?[0-9][0-9.eE+-]*", at)
            assert number is not None and float(number.group()) == value, e
        else:
            assert at.startswith(json.dumps(value, ensure_ascii=False)), e


# --- the example plans ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_PLANS, ids=lambda p: p.name)
def test_example_plans_have_no_findings(path: Path) -> None:
    result = validate_file(path)
    assert result.plan is not None
    assert [(d.code, d.line, d.message) for d in result.diagnostics] == []


def test_example_plans_are_valid_with_strict(validate_cli: Invoke) -> None:
    result = validate_cli("--strict", *map(str, EXAMPLE_PLANS))
    assert result.exit_code == 0
    assert result.output == f"0 errors, 0 warnings in {len(EXAMPLE_PLANS)} plans (all valid)\n"


# --- exit codes and arguments (CliRunner) ----------------------------------------------------------

WARNING_ONLY = FIXTURES / "invalid" / "dr306-timeout-below-estimate" / "plan.json"
ERRORS = FIXTURES / "invalid" / "dr201-unknown-service" / "plan.json"


def test_warnings_exit_0_and_1_with_strict(validate_cli: Invoke) -> None:
    assert validate_cli(str(WARNING_ONLY)).exit_code == 0
    strict = validate_cli("--strict", str(WARNING_ONLY))
    assert strict.exit_code == 1
    assert strict.output.endswith("0 errors, 1 warning in 1 plan (1 of 1 invalid)\n")


def test_errors_exit_1(validate_cli: Invoke) -> None:
    result = validate_cli(str(ERRORS), str(VALID[0]))
    assert result.exit_code == 1
    assert result.output.endswith("1 error, 0 warnings in 2 plans (1 of 2 invalid)\n")


def test_missing_file_is_dr004_and_exit_2(validate_cli: Invoke, tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = validate_cli(str(ERRORS), str(missing))
    assert result.exit_code == 2
    # The other plan is still reported: one unreadable file does not hide the findings of the rest.
    assert f"{missing}:1:1: error DR004 cannot read file: No such file or directory\n" in result.output
    assert "error DR201" in result.output


def test_quoted_glob_is_expanded_by_drplan(validate_cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = validate_cli("--format", "json", "tests/fixtures/valid/*.json")
    assert result.exit_code == 0
    assert [f["path"] for f in json.loads(result.stdout)["files"]] == [
        str(p.relative_to(ROOT)) for p in VALID
    ]
    result = validate_cli("tests/fixtures/invalid/dr20[12]-*/plan.json")
    assert result.exit_code == 1
    assert result.output.endswith("in 2 plans (2 of 2 invalid)\n")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["no/such/dir/*.json"], "no file matches 'no/such/dir/*.json'"),
        ([str(FIXTURES / "valid")], "is a directory"),
        ([str(FIXTURES / "inv*")], "no plan file matches"),  # the glob matches only a directory
        ([], "Missing argument 'PLAN...'"),
        (["--format", "xml", str(VALID[0])], "Invalid value for '--format'"),
    ],
)
def test_usage_errors_exit_2(validate_cli: Invoke, args: list[str], words: str) -> None:
    result = validate_cli(*args)
    assert result.exit_code == 2
    assert words in result.stderr
    assert result.stdout == ""


def test_dash_reads_standard_input(validate_cli: Invoke) -> None:
    good = validate_cli("-", input=VALID[0].read_bytes())
    assert (good.exit_code, good.output) == (0, "0 errors, 0 warnings in 1 plan (all valid)\n")
    bad = validate_cli("-", input=ERRORS.read_bytes())
    assert bad.exit_code == 1
    assert bad.output.startswith("<stdin>:31:9: error DR201 service `web` depends on `dbb`")


def test_output_file(validate_cli: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = validate_cli("--format", "json", "-o", str(out), str(ERRORS))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(out.read_text())["error_count"] == 1


# --- the real thing: python -m drplan in a subprocess ----------------------------------------------


def drplan(*args: str, stdin: bytes | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "drplan", "validate", *args],
        input=stdin.decode("utf-8") if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "stdin", "code", "stdout_has", "stderr_has"),
    [
        (["plans/*.json"], None, 0, f"in {len(EXAMPLE_PLANS)} plans (all valid)", ""),
        ([str(WARNING_ONLY.relative_to(ROOT))], None, 0, "0 errors, 1 warning in 1 plan (all valid)", ""),
        (["--strict", str(WARNING_ONLY.relative_to(ROOT))], None, 1, "warning DR306", ""),
        ([str(ERRORS.relative_to(ROOT))], None, 1, "plan.json:31:9: error DR201", ""),
        (["-"], ERRORS.read_bytes(), 1, "<stdin>:31:9: error DR201", ""),
        (["missing.json"], None, 2, "missing.json:1:1: error DR004 cannot read file", ""),
        (["plans/*.yaml"], None, 2, "", "no file matches 'plans/*.yaml'"),
        (["plans"], None, 2, "", "'plans' is a directory"),
    ],
    ids=[
        "glob-valid",
        "warning",
        "strict-warning",
        "errors",
        "stdin",
        "missing-file",
        "glob-no-match",
        "directory",
    ],
)
def test_subprocess_exit_codes(
    args: list[str], stdin: bytes | None, code: int, stdout_has: str, stderr_has: str
) -> None:
    done = drplan(*args, stdin=stdin)
    assert done.returncode == code, done.stderr
    assert stdout_has in done.stdout
    assert stderr_has in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_validate_does_not_import_boto3() -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from drplan.cli import main

        codes = []
        for args in (sys.argv[1:2], sys.argv[2:]):
            try:
                main(["validate", *args])
            except SystemExit as exc:
                codes.append(exc.code)
        loaded = {name: name in sys.modules for name in ("boto3", "botocore")}
        print(json.dumps({"codes": codes, **loaded}))
        """
    )
    invalid = [str(case / "plan.json") for case in INVALID]
    done = subprocess.run(
        [sys.executable, "-c", script, "plans/*.json", *invalid],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    # Valid example plans (exit 0), then every invalid fixture (schema explanations, checks).
    assert outcome == {"codes": [0, 1], "boto3": False, "botocore": False}


# --- a drplan bug is a finding of its file, never a traceback --------------------------------------


def _crash_on(monkeypatch: pytest.MonkeyPatch, victim: Path) -> None:
    from drplan import pipeline

    real = pipeline.validate_file

    def flaky(path: Any, **kwargs: Any) -> Any:
        if Path(path) == victim:
            raise ValueError("a bug\nover two lines")
        return real(path, **kwargs)

    monkeypatch.setattr(pipeline, "validate_file", flaky)


def test_an_internal_error_is_a_dr000_finding_and_the_other_files_are_still_checked(
    validate_cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    _crash_on(monkeypatch, VALID[0])
    result = validate_cli(str(VALID[0]), str(ERRORS), str(VALID[1]))
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"{VALID[0]}:1:1: error DR000 drplan failed while checking this file (ValueError: a bug\\nover two "
        "lines); this is a bug in drplan, not in the plan: please report it, and rerun with --debug to see "
        "the traceback"
    )
    assert "error DR201" in result.stdout  # the next file
    assert lines[-1] == "2 errors, 0 warnings in 3 plans (2 of 3 invalid)"
    assert "Traceback" not in result.output


def test_with_debug_the_traceback_goes_to_stderr(
    validate_cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drplan.cli import validate as validate_module

    _crash_on(monkeypatch, VALID[0])
    monkeypatch.setattr(validate_module, "_debug", lambda: True)
    result = validate_cli("--format", "json", str(VALID[0]))
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "ValueError: a bug" in result.stderr
    assert [d["code"] for d in json.loads(result.stdout)["diagnostics"]] == ["DR000"]


def test_an_internal_error_on_standard_input(validate_cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    from drplan import pipeline

    def broken(document: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "validate_document", broken)
    result = validate_cli("--format", "json", "-", input=VALID[0].read_bytes())
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert report["files"][0]["sha256"] is not None  # the file was read: its digest is known
    assert [d["code"] for d in report["diagnostics"]] == ["DR000"]


@pytest.mark.parametrize("text", ["null", "[]", "3", '"plan"'])
def test_a_plan_that_is_not_an_object_is_invalid_not_valid(validate_cli: Invoke, text: str) -> None:
    result = validate_cli("-", input=text)
    assert result.exit_code == 1
    assert result.stdout.startswith("<stdin>:1:1: error DR103 a plan must be a JSON object")
