"""``drplan graph``: formats and suffixes, modes, levels, focus, exit codes, determinism, no dot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import PLANS, ROOT

from drplan.cli import cli, main
from drplan.cli import graph as graph_cli

WEBSHOP = str(PLANS / "webshop.json")
GOLDEN = Path(__file__).resolve().parent / "golden"
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)"
)
HINTS = ("apt-get install graphviz", "brew install graphviz", "https://graphviz.org/download/")


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["graph", *args], catch_exceptions=False)


def test_dot_on_stdout_by_default() -> None:
    result = run(WEBSHOP)
    assert result.exit_code == 0, result.output
    assert result.stdout == (GOLDEN / "webshop.dot").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("g.dot", b"// webshop"),
        ("g.gv", b"// webshop"),
        ("g.mmd", b"---\ntitle:"),
        ("g.mermaid", b"---\ntitle:"),
        ("g.md", b"```mermaid\n---\ntitle:"),
        pytest.param("g.svg", b"<?xml", marks=[pytest.mark.dot, needs_dot]),
        pytest.param("g.png", b"\x89PNG", marks=[pytest.mark.dot, needs_dot]),
        pytest.param("g.pdf", b"%PDF-", marks=[pytest.mark.dot, needs_dot]),
    ],
)
def test_output_suffix_picks_the_format(tmp_path: Path, name: str, start: bytes) -> None:
    out = tmp_path / name
    result = run(WEBSHOP, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert out.read_bytes().startswith(start)


def test_mermaid_file_matches_golden(tmp_path: Path) -> None:
    out = tmp_path / "webshop.mmd"
    assert run(WEBSHOP, "-o", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == (GOLDEN / "webshop.mmd").read_text(encoding="utf-8")
    fenced = tmp_path / "webshop.md"
    assert run(WEBSHOP, "-o", str(fenced)).exit_code == 0
    assert fenced.read_text(encoding="utf-8") == "```mermaid\n" + out.read_text(encoding="utf-8") + "```\n"


def test_unknown_suffix_and_conflicting_format_are_usage_errors(tmp_path: Path) -> None:
    result = run(WEBSHOP, "-o", str(tmp_path / "g.txt"))
    assert result.exit_code == 2 and "cannot tell the format" in result.output
    result = run(WEBSHOP, "--format", "svg", "-o", str(tmp_path / "g.png"))
    assert result.exit_code == 2 and "does not match" in result.output
    result = run(WEBSHOP, "--format", "dot", "-o", str(tmp_path / "g.txt"))  # an explicit format wins
    assert result.exit_code == 0 and (tmp_path / "g.txt").read_text().startswith("// webshop")


@needs_dot
@pytest.mark.dot
def test_svg_on_stdout_parses_as_xml() -> None:
    result = run(WEBSHOP, "--format", "svg")
    assert result.exit_code == 0
    root = ET.fromstring(result.stdout_bytes)
    titles = {el.text for el in root.iter("{http://www.w3.org/2000/svg}title")}
    assert "web.dns" in titles


def test_binary_formats_are_not_written_to_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_cli, "stdout_is_terminal", lambda: True)
    result = run(WEBSHOP, "--format", "png")
    assert result.exit_code == 2 and "not writing PNG to a terminal" in result.output
    assert run(WEBSHOP, "--format", "dot").exit_code == 0  # text is fine on a terminal


def test_drill_mode() -> None:
    result = run(WEBSHOP, "--mode", "drill")
    assert result.exit_code == 0
    assert result.stdout == (GOLDEN / "webshop.drill.dot").read_text(encoding="utf-8")


def test_services_level_and_focus() -> None:
    assert run(WEBSHOP, "--level", "services").stdout == (GOLDEN / "webshop.services.dot").read_text(
        encoding="utf-8"
    )
    result = run(WEBSHOP, "--focus", "orders-db", "--format", "mermaid")
    assert result.stdout == (GOLDEN / "webshop.focus-orders-db.mmd").read_text(encoding="utf-8")


def test_unknown_focus_is_a_usage_error_with_a_suggestion() -> None:
    result = run(WEBSHOP, "--focus", "order-db")
    assert result.exit_code == 2
    assert "no service 'order-db' in the plan; did you mean 'orders-db'?" in result.output
    result = run(WEBSHOP, "--focus", "zzz")
    assert result.exit_code == 2 and "orders-db, carts, media, assets, web" in result.output


def test_focus_on_a_service_without_steps_in_the_mode(tmp_path: Path) -> None:
    data = json.loads((PLANS / "webshop.json").read_text(encoding="utf-8"))
    for step in data["services"]["carts"]["steps"]:
        step["only"] = "drill"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(data), encoding="utf-8")
    result = run(str(plan), "--focus", "carts")
    assert result.exit_code == 2 and "no steps in recover mode" in result.output
    assert run(str(plan), "--focus", "carts", "--mode", "drill").exit_code == 0


def test_auto_level_switches_with_a_note(monkeypatch: pytest.MonkeyPatch) -> None:
    import drplan.render

    monkeypatch.setattr(drplan.render, "AUTO_SERVICES_ABOVE", 5)
    result = run(WEBSHOP)
    assert result.exit_code == 0
    assert "drawing one node per service" in result.stderr
    assert result.stdout == (GOLDEN / "webshop.services.dot").read_text(encoding="utf-8")
    result = run(WEBSHOP, "--level", "steps")
    assert result.stderr == "" and result.stdout == (GOLDEN / "webshop.dot").read_text(encoding="utf-8")


def test_date_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1718064000")  # 2024-06-11
    assert "generated" not in run(WEBSHOP).stdout
    assert "\\ngenerated 2024-06-11" in run(WEBSHOP, "--date").stdout
    assert run(WEBSHOP, "--date", "--format", "mermaid").stdout.endswith("%% generated 2024-06-11\n")


def test_invalid_plan_prints_the_findings_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads((PLANS / "webshop.json").read_text(encoding="utf-8"))
    data["services"]["web"]["depends_on"].append("payments")  # no such service
    plan = tmp_path / "bad.json"
    plan.write_text(json.dumps(data, indent=2), encoding="utf-8")
    with pytest.raises(SystemExit) as graph_exit:
        main(["graph", str(plan)])
    graph_err = capsys.readouterr()
    with pytest.raises(SystemExit) as validate_exit:
        main(["validate", str(plan)])
    validate_out = capsys.readouterr()
    assert graph_exit.value.code == 1 and validate_exit.value.code == 1
    assert graph_err.out == ""
    located = [line for line in graph_err.err.splitlines() if line.startswith(str(plan) + ":")]
    assert located, graph_err.err
    for line in located:
        code = line.split()[2]
        assert code in validate_out.out + validate_out.err


# --- separate processes ---------------------------------------------------------------------------


def drplan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "drplan", "graph", *args], cwd=ROOT, capture_output=True, env=env, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "golden"), [("dot", "webshop.dot"), ("mermaid", "webshop.mmd")])
def test_byte_identical_across_processes_and_hash_seeds(fmt: str, golden: str) -> None:
    runs = [
        drplan(WEBSHOP, "--format", fmt, env={**os.environ, "PYTHONHASHSEED": seed}) for seed in ("1", "4242")
    ]
    assert all(done.returncode == 0 for done in runs)
    assert runs[0].stdout == runs[1].stdout == (GOLDEN / golden).read_bytes()


VARIANTS_SCRIPT = """
import sys
from drplan.cli import main
for plan in ("analytics-aurora", "payments-backup"):
    for args in ([], ["--level", "services"], ["--mode", "drill"], ["--format", "mermaid"]):
        try:
            main(["graph", f"plans/{plan}.json", *args])
        except SystemExit as exc:
            assert not exc.code, exc.code
focus = ["--focus", "dashboards", "--mode", "drill", "--format", "mermaid"]
main(["graph", "plans/analytics-aurora.json", *focus])
"""


@pytest.mark.slow
def test_every_variant_is_byte_identical_across_hash_seeds() -> None:
    runs = [
        subprocess.run(
            [sys.executable, "-c", VARIANTS_SCRIPT],
            cwd=ROOT,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=False,
        )
        for seed in ("0", "31337")
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr.decode()
    assert runs[0].stdout.count(b"digraph ") == 6 and runs[0].stdout.count(b"flowchart LR") == 3
    assert runs[0].stdout == runs[1].stdout


@pytest.mark.slow
def test_without_graphviz_images_fail_with_an_install_hint_and_text_still_works(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "DRPLAN_DOT"}
    env["PATH"] = str(empty)
    done = drplan(WEBSHOP, "--format", "svg", env=env)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "needs Graphviz's `dot`" in err
    for hint in HINTS:
        assert hint in err
    assert done.stdout == b""
    done = drplan(WEBSHOP, "--format", "dot", env=env)
    assert done.returncode == 0 and done.stdout == (GOLDEN / "webshop.dot").read_bytes()
    done = drplan(WEBSHOP, "--format", "mermaid", env=env)
    assert done.returncode == 0 and done.stdout == (GOLDEN / "webshop.mmd").read_bytes()


@pytest.mark.slow
def test_graph_does_not_import_boto3() -> None:
    code = (
        "import sys\nfrom drplan.cli import main\n"
        "try:\n    main(['graph', 'plans/webshop.json', '--format', 'mermaid'])\n"
        "except SystemExit:\n    pass\n"
        "sys.stderr.write('boto3' if 'boto3' in sys.modules else 'clean')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=False)
    assert done.stderr.decode().endswith("clean")
