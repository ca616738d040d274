"""The GitHub Action (action.yml) and the pre-commit hook (.pre-commit-hooks.yaml), checked with the
tools that read them: check-jsonschema's GitHub Actions schema, the action's own scripts run as a
runner would run them, and ``pre-commit try-repo``. docs/ci.md shows exactly these files."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import PLANS, ROOT

ACTION = ROOT / "action.yml"
HOOKS = ROOT / ".pre-commit-hooks.yaml"
CI_MD = ROOT / "docs" / "ci.md"
BAD_PLAN = '{"drplan": 1, "name": "Bad Name", "services": {}}\n'


def action() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    return data


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema missing: pip install -e '.[test]'")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- the action ----------------------------------------------------------------------------------------


def test_the_action_passes_the_github_actions_schema(tmp_path: Path) -> None:
    result = check_jsonschema(ACTION)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = action()
    broken["runs"]["steps"][0].pop("uses")  # a step with neither `uses` nor `run`
    broken["runs"]["using"] = "docker"  # and no image
    (tmp_path / "action.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert check_jsonschema(tmp_path / "action.yml").returncode == 1  # the schema does bite


def test_the_action_validates_with_sarif_upload_and_drills_with_an_evidence_artifact() -> None:
    steps = action()["runs"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    scripts = "\n".join(s.get("run", "") for s in steps)
    assert "drplan validate --format sarif" in scripts and "drplan drill" in scripts
    for step in steps:  # inputs reach scripts through env only: no ${{ }} expansion inside a script
        assert "${{" not in step.get("run", ""), step["name"]
    assert {"plans", "command", "plan", "sandbox", "evidence-name"} <= set(action()["inputs"])


def run_step(name: str, inputs: dict[str, str], workspace: Path) -> tuple[int, dict[str, str]]:
    """Run one of the action's `run` steps as a runner would: bash, its env from the inputs."""
    spec = action()
    step = next(s for s in spec["runs"]["steps"] if s.get("name") == name)
    values = {k: str(v.get("default", "")) for k, v in spec["inputs"].items()} | inputs
    env = dict(os.environ)
    for key, value in step.get("env", {}).items():
        found = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", value)
        assert found, value
        env[key] = values[found.group(1)]
    output, summary = workspace / "github-output", workspace / "step-summary"
    env.update(
        GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary), RUNNER_TEMP=str(workspace / "tmp")
    )
    (workspace / "tmp").mkdir(exist_ok=True)
    output.write_text("")
    done = subprocess.run(
        ["bash", "-e", "-c", step["run"]], cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done.returncode, outputs


@pytest.mark.slow
def test_the_action_scripts_validate_and_drill_as_on_a_runner(tmp_path: Path) -> None:
    plans = tmp_path / "plans"
    plans.mkdir()
    shutil.copy(PLANS / "status-page.json", plans / "status-page.json")
    code, outputs = run_step("Validate plans", {}, tmp_path)
    assert code == 0 and outputs["exit-code"] == "0"
    sarif = json.loads(Path(outputs["sarif-file"]).read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"] == []

    (plans / "bad.json").write_text(BAD_PLAN)
    code, outputs = run_step("Validate plans", {}, tmp_path)
    assert code == 0 and outputs["exit-code"] == "1"  # the last step fails the job, after the upload
    results = json.loads(Path(outputs["sarif-file"]).read_text())["runs"][0]["results"]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results} == {
        "plans/bad.json"
    }

    code, outputs = run_step(
        "Drill", {"command": "drill", "plan": "plans/status-page.json", "sandbox": "true"}, tmp_path
    )
    assert code == 0 and outputs["exit-code"] == "0", outputs
    evidence = tmp_path / outputs["evidence-dir"]
    assert {"report.json", "report.md", "junit.xml", "metrics.prom"} <= {p.name for p in evidence.iterdir()}
    assert "Drill report: status-page" in (tmp_path / "step-summary").read_text()


# --- pre-commit -----------------------------------------------------------------------------------------


def test_the_hook_definition() -> None:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    (hook,) = [h for h in hooks if h["id"] == "drplan-validate"]
    assert hook["entry"] == "drplan validate" and hook["language"] == "python"
    assert re.search(hook["files"], "plans/webshop.json") and re.search(hook["files"], "infra/plans/a.json")
    assert not re.search(hook["files"], "package.json")


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This repository as it is in the working tree (committed or not), as a git repository."""
    if shutil.which("pre-commit") is None or shutil.which("git") is None:
        pytest.skip("pre-commit or git missing: pip install -e '.[test]'")
    copy = tmp_path_factory.mktemp("drplan-repo")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-q", "-m", "drplan")
    return copy


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.slow
def test_pre_commit_try_repo_runs_the_hook_on_good_and_bad_plans(hook_repo: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "plans").mkdir(parents=True)
    shutil.copy(PLANS / "status-page.json", project / "plans" / "good.json")
    (project / "plans" / "bad.json").write_text(BAD_PLAN)
    git(project, "init", "-q")
    git(project, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}

    def try_repo(plan: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pre-commit", "try-repo", str(hook_repo), "drplan-validate", "--files", plan],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    good = try_repo("plans/good.json")
    assert good.returncode == 0, good.stdout + good.stderr
    assert re.search(r"drplan validate\.+Passed", good.stdout)
    bad = try_repo("plans/bad.json")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "plans/bad.json:1:23: error DR104" in bad.stdout and "Failed" in bad.stdout


# --- docs/ci.md shows these files --------------------------------------------------------------------------


def yaml_blocks(markdown: str) -> list[Any]:
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", markdown, flags=re.S)]


def test_ci_md_uses_exactly_the_action_and_the_hook() -> None:
    text = CI_MD.read_text(encoding="utf-8")
    inputs = set(action()["inputs"])
    hook_ids = {h["id"] for h in yaml.safe_load(HOOKS.read_text(encoding="utf-8"))}
    action_steps, hooks_used = [], []
    for block in yaml_blocks(text):
        if not isinstance(block, dict):
            continue
        for job in (block.get("jobs") or {}).values():
            for step in job.get("steps", []):
                if str(step.get("uses", "")).startswith("drplan/drplan@"):
                    action_steps.append(step)
                    assert set(step.get("with", {})) <= inputs, set(step.get("with", {})) - inputs
                    command = step.get("with", {}).get("command", "validate")
                    assert command in ("validate", "drill")
        for repo in block.get("repos", []):
            if repo.get("repo") == "https://github.com/drplan/drplan":
                hooks_used += [h["id"] for h in repo["hooks"]]
                assert re.fullmatch(r"v\d+\.\d+\.\d+", repo["rev"])
    assert {s.get("with", {}).get("command", "validate") for s in action_steps} == {"validate", "drill"}
    assert hooks_used and set(hooks_used) <= hook_ids
    for heading in ("### GitHub Actions", "### pre-commit"):  # the action and the hook, not hand-made steps
        section = text.split(heading, 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
        assert "pip install drplan" not in section and "repo: local" not in section, heading
