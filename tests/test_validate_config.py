"""Tuning ``drplan validate`` for a repository: settings files, ``--ignore``, several reports from
one run, and the findings of sound services next to another service's schema errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_PLANS, Invoke

from drplan.cli import main
from drplan.pipeline import validate_file

WEBSHOP = next(p for p in EXAMPLE_PLANS if p.name == "webshop.json")


def drplan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``drplan ARGS`` through the real entry point (usage errors become exit 2 there)."""
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    captured = capsys.readouterr()
    return int(ended.value.code or 0), captured.out + captured.err


def plan_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(WEBSHOP.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with a plan whose only finding is a DR303 warning (a step without estimate),
    and the working directory in a subfolder of it, as a CI job's might be."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    data = plan_data()
    del data["services"]["carts"]["steps"][0]["estimate"]
    (root / "plan.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    (root / "sub").mkdir()
    monkeypatch.chdir(root / "sub")
    return root


def test_without_settings_the_warning_is_reported(validate_cli: Invoke, repo: Path) -> None:
    result = validate_cli("../plan.json")
    assert result.exit_code == 0
    assert "warning DR303" in result.output
    assert result.output.endswith("0 errors, 1 warning in 1 plan (all valid)\n")
    assert validate_cli("--strict", "../plan.json").exit_code == 1


def test_pyproject_settings_are_found_upwards(validate_cli: Invoke, repo: Path) -> None:
    (repo / "pyproject.toml").write_text(
        '[tool.drplan]\nignore = ["DR303"]\nstrict = true\n', encoding="utf-8"
    )
    result = validate_cli("../plan.json")
    assert result.exit_code == 0, result.output
    assert result.output == "0 errors, 0 warnings in 1 plan (all valid); ignoring DR303\n"


def test_a_pyproject_without_a_drplan_table_is_passed_over(validate_cli: Invoke, repo: Path) -> None:
    (repo / "sub" / "pyproject.toml").write_text("[tool.other]\nx = 1\n", encoding="utf-8")
    (repo / ".drplan.toml").write_text("strict = true\n", encoding="utf-8")
    assert validate_cli("../plan.json").exit_code == 1  # strict, from the repository's .drplan.toml


def test_the_search_stops_at_the_repository_root(validate_cli: Invoke, repo: Path) -> None:
    (repo.parent / ".drplan.toml").write_text("strict = true\n", encoding="utf-8")
    assert validate_cli("../plan.json").exit_code == 0  # a file above .git is another project's
    (repo / ".git").rmdir()
    assert validate_cli("../plan.json").exit_code == 1  # not a repository: the search goes on


def test_drplan_toml_wins_over_pyproject_in_the_same_folder(validate_cli: Invoke, repo: Path) -> None:
    (repo / "pyproject.toml").write_text("[tool.drplan]\nstrict = true\n", encoding="utf-8")
    (repo / ".drplan.toml").write_text("strict = false\n", encoding="utf-8")
    assert validate_cli("../plan.json").exit_code == 0


def test_no_strict_overrides_the_settings(validate_cli: Invoke, repo: Path) -> None:
    (repo / ".drplan.toml").write_text("strict = true\n", encoding="utf-8")
    assert validate_cli("../plan.json").exit_code == 1
    assert validate_cli("--no-strict", "../plan.json").exit_code == 0


def test_ignore_on_the_command_line_adds_to_the_settings(validate_cli: Invoke, repo: Path) -> None:
    result = validate_cli("--strict", "--ignore", "dr306,DR303", "../plan.json")  # case and commas
    assert result.exit_code == 0, result.output
    assert result.output.endswith("(all valid); ignoring DR303, DR306\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ignore", "DR201"], "DR201 (unknown-service) is an error and cannot be ignored"),
        (["--ignore", "DR999"], "unknown finding code 'DR999'"),
        (["--report", "sarif"], "must be FORMAT:PATH"),
        (["--report", "pdf:x.pdf"], "must be FORMAT:PATH"),
    ],
)
def test_bad_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], repo: Path, args: list[str], message: str
) -> None:
    code, output = drplan(capsys, "validate", *args, "../plan.json")
    assert code == 2
    assert message in output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("ignore = 'DR303'\n", "`ignore` must be a list of codes"),
        ("strict = 'yes'\n", "`strict` must be true or false"),
        ("ignores = ['DR303']\n", "unknown setting 'ignores'"),
        ("ignore = ['DR207']\n", "DR207 (dependency-cycle) is an error"),
        ("strict = \n", "not valid TOML"),
    ],
)
def test_bad_settings_name_the_file(
    capsys: pytest.CaptureFixture[str], repo: Path, settings: str, message: str
) -> None:
    (repo / ".drplan.toml").write_text(settings, encoding="utf-8")
    code, output = drplan(capsys, "validate", "../plan.json")
    assert code == 2, output
    assert ".drplan.toml" in output and message in output


def test_one_run_writes_several_reports(validate_cli: Invoke, repo: Path) -> None:
    (repo / "build").mkdir()
    (repo / ".drplan.toml").write_text('reports = ["sarif:build/drplan.sarif"]\n', encoding="utf-8")
    result = validate_cli("../plan.json", "--report", "junit:junit.xml", "--report", "json:../build/x.json")
    assert result.exit_code == 0
    assert "warning DR303" in result.output  # the console keeps its text report
    # Paths in the settings file are from its folder; on the command line, from the working directory.
    sarif = json.loads((repo / "build" / "drplan.sarif").read_text(encoding="utf-8"))
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["DR303"]
    assert "DR303" in (repo / "sub" / "junit.xml").read_text(encoding="utf-8")
    alone = validate_cli("--format", "json", "../plan.json")
    assert json.loads((repo / "build" / "x.json").read_text(encoding="utf-8")) == json.loads(alone.output)


def test_a_report_that_cannot_be_written_stops_before_any_is(
    capsys: pytest.CaptureFixture[str], repo: Path
) -> None:
    code, output = drplan(
        capsys, "validate", "../plan.json", "--report", "sarif:ok.sarif", "--report", "junit:missing/j.xml"
    )
    assert code == 2
    assert "the folder missing does not exist" in output
    assert not (repo / "sub" / "ok.sarif").exists()


# --- schema errors no longer hide the rest of the plan -------------------------------------------


def findings(path: Path) -> list[tuple[str, str | None]]:
    return [(d.code, d.pointer) for d in validate_file(path).diagnostics]


def test_sound_services_are_checked_next_to_a_schema_error(tmp_path: Path) -> None:
    data = plan_data()
    data["services"]["carts"]["steps"][0]["retries"] = "twice"  # schema: carts
    data["services"]["media"]["depends_on"] = ["nosuch"]  # DR201 in a sound service
    data["services"]["assets"]["steps"][0]["after"] = ["media.nope"]  # DR208 in another
    data["services"]["web"]["depends_on"].append("ghost")  # web depends on carts: not checked
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    assert findings(path) == [
        ("DR103", "/services/carts/steps/0/retries"),
        ("DR201", "/services/media/depends_on/0"),
        ("DR208", "/services/assets/steps/0/after/0"),
    ]
    # Once carts is fixed, the whole plan is checked, and web's own finding appears.
    data["services"]["carts"]["steps"][0]["retries"] = 2
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    assert ("DR201", "/services/web/depends_on/4") in findings(path)


def test_services_that_refer_to_a_broken_one_through_outputs_are_set_aside(tmp_path: Path) -> None:
    data = plan_data()
    data["services"]["orders-db"]["steps"][0]["estimate"] = "soon"  # schema: orders-db
    web = json.dumps(data["services"]["web"])
    assert "${orders-db." in web or '"orders-db"' in web  # web refers to it
    data["services"]["web"]["steps"][0]["after"] = ["nope.nope"]  # would be DR208 if checked
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    assert findings(path) == [("DR104", "/services/orders-db/steps/0/estimate")]


def test_a_schema_error_outside_the_services_leaves_nothing_to_check(tmp_path: Path) -> None:
    data = plan_data()
    data["objectives"] = {"rto": "an hour"}
    data["services"]["media"]["depends_on"] = ["nosuch"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    assert {code for code, _ in findings(path)} <= {"DR101", "DR102", "DR103", "DR104", "DR105", "DR100"}
    assert all(not (p or "").startswith("/services/media") for _, p in findings(path))


def test_whole_plan_findings_wait_for_the_whole_plan(tmp_path: Path) -> None:
    """A service nothing depends on once its dependents are set aside is not "unverified" (DR304),
    and objectives are not predicted on part of the plan (DR301/DR302)."""
    data = plan_data()
    data["objectives"]["rto"] = "PT1M"  # every prediction misses this
    data["services"]["web"]["steps"][0]["timeout"] = 5  # schema: web, which depends on all others
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    codes = [code for code, _ in findings(path)]
    assert codes and not {"DR301", "DR302", "DR304"} & set(codes), codes
    data["services"]["web"]["steps"][0].pop("timeout")
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    assert {"DR302"} <= {code for code, _ in findings(path)}  # the whole plan: predicted and missed
