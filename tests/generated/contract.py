"""The contract every plan ``drplan validate`` accepts must keep, as plain functions.

- ``validate`` itself never fails inside drplan (no DR000, no traceback) and exits 0 or 1.
- ``plan`` (text, json, markdown; both modes), ``graph`` (dot, mermaid; both modes) and ``docs``
  (both modes) render it without raising; ``plan`` exits 1 only when its own verdict says an
  objective would be missed (for a real recovery: exactly when ``validate`` reported DR301 or
  DR302), ``graph`` and ``docs`` exit 0. Plans whose only errors are DR301/DR302 are shown too
  (docs/validation.md, drplan/cli/review.py), so they are held to the same contract.
- JSON output parses; DOT output is accepted by Graphviz's ``dot`` when it is installed.
- a sandbox drill (``python -m drplan drill PLAN --sandbox --approve-all --allow-commands``)
  exits 0, 1 or 3, never prints "internal error", a traceback or the name of an exception only a
  bug raises (KeyError, TypeError, ...), and its last line on standard
  error ends with ``(exit N)``, N being its exit code. Nothing interrupts these drills, so that
  last line must not say the drill was interrupted (exit 3 then has to mean cleanup trouble).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from drplan.cli import cli

OBJECTIVE_CODES = {"DR301", "DR302"}
#: Python exceptions that only a bug raises: one named in a drill's output is an internal error
#: that escaped without the label (a failure should be an AWS-level or plan-level finding).
LEAKED = re.compile(
    r"\b(KeyError|TypeError|AttributeError|IndexError|NameError|UnboundLocalError|ZeroDivisionError"
    r"|RecursionError|UnicodeEncodeError|UnicodeDecodeError|AssertionError|NotImplementedError)\b"
)
DRILL_TIMEOUT = float(os.environ.get("DRPLAN_GENERATED_DRILL_TIMEOUT", "120"))
MODES = ("recover", "drill")


@dataclass(frozen=True)
class Validation:
    kind: str  # "valid", "objective" (only DR301/DR302 errors) or "rejected"
    errors: tuple[str, ...]  # "CODE message" of every error
    warnings: tuple[str, ...]

    @property
    def objective_missed(self) -> bool:
        return self.kind == "objective"


def write_plan(plan: dict[str, Any], directory: Path, name: str = "plan.json") -> Path:
    path = directory / name
    path.write_text(json.dumps(plan, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def _explain(args: tuple[str, ...], result: Result) -> str:
    import traceback

    out = [f"$ drplan {' '.join(args)}", f"exit code: {result.exit_code}"]
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        out.append(
            "".join(traceback.format_exception(*result.exc_info))
            if result.exc_info
            else repr(result.exception)
        )
    out.append("--- stdout (end) ---\n" + result.stdout[-3000:])
    out.append("--- stderr (end) ---\n" + result.stderr[-3000:])
    return "\n".join(out)


def _run(*args: str) -> Result:
    """``drplan ARGS`` in click's runner; an exception other than the command's own exit is a crash."""
    result = _invoke(*args)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    assert not crashed, "crash:\n" + _explain(args, result)
    return result


def validate(path: Path) -> Validation:
    args = ("validate", "--format", "json", str(path))
    result = _run(*args)
    assert result.exit_code in (0, 1), "validate: unexpected exit code\n" + _explain(args, result)
    report = json.loads(result.stdout)
    diagnostics = report["diagnostics"]
    internal = [d for d in diagnostics if d["code"] == "DR000"]
    assert not internal, "validate failed inside drplan (DR000)\n" + _explain(args, result)
    errors = tuple(f"{d['code']} {d['message']}" for d in diagnostics if d["severity"] == "error")
    warnings = tuple(f"{d['code']} {d['message']}" for d in diagnostics if d["severity"] == "warning")
    codes = {e.split(" ", 1)[0] for e in errors}
    kind = "valid" if not codes else "objective" if codes <= OBJECTIVE_CODES else "rejected"
    assert (result.exit_code == 0) == (not errors), "validate: exit code disagrees\n" + _explain(args, result)
    return Validation(kind, errors, warnings)


def check_render(path: Path, validation: Validation) -> None:
    """plan, graph and docs on a plan validate accepted (or rejected only for missed objectives)."""
    assert validation.kind in ("valid", "objective")
    for mode in MODES:
        args = ("plan", str(path), "--mode", mode, "--format", "json")
        result = _run(*args)
        assert result.exit_code in (0, 1), "plan: unexpected exit code\n" + _explain(args, result)
        dry = json.loads(result.stdout)
        missed = dry["verdict"] == "missed"
        assert result.exit_code == (1 if missed else 0), (
            f"plan --format json exits {result.exit_code} but its verdict is {dry['verdict']!r}\n"
            + _explain(args, result)
        )
        if mode == "recover":
            assert missed == validation.objective_missed, (
                f"a real recovery's dry run says {dry['verdict']!r}, but validate "
                + ("reported a missed objective" if validation.objective_missed else "did not")
                + f" ({'; '.join(validation.errors) or 'no errors'})\n"
                + _explain(args, result)
            )
        for fmt in ("text", "markdown"):
            args = ("plan", str(path), "--mode", mode, "--format", fmt)
            result = _run(*args)
            assert result.exit_code == (1 if missed else 0), (
                f"plan --format {fmt} exits {result.exit_code}, the json format {1 if missed else 0}\n"
                + _explain(args, result)
            )
            assert result.stdout.strip(), "plan printed nothing\n" + _explain(args, result)
        for fmt in ("dot", "mermaid"):
            args = ("graph", str(path), "--mode", mode, "--format", fmt)
            result = _run(*args)
            assert result.exit_code == 0, "graph: unexpected exit code\n" + _explain(args, result)
            assert result.stdout.strip(), "graph printed nothing\n" + _explain(args, result)
            if fmt == "dot":
                _check_dot(result.stdout, args)
        if mode == "recover":
            for extra in _graph_variants(path):
                args = ("graph", str(path), *extra)
                result = _run(*args)
                assert result.exit_code == 0, "graph: unexpected exit code\n" + _explain(args, result)
                if "dot" in extra:
                    _check_dot(result.stdout, args)
            args = ("plan", str(path), "--format", "json", "--parallelism", "1")
            result = _run(*args)
            verdict = json.loads(result.stdout)["verdict"]
            assert result.exit_code == (1 if verdict == "missed" else 0), (
                f"plan --parallelism 1 exits {result.exit_code} but its verdict is {verdict!r}\n"
                + _explain(args, result)
            )
        args = ("docs", str(path), "--mode", mode)
        result = _run(*args)
        assert result.exit_code == 0, "docs: unexpected exit code\n" + _explain(args, result)
        assert result.stdout.strip(), "docs printed nothing\n" + _explain(args, result)


def _graph_variants(path: Path) -> list[tuple[str, ...]]:
    """``--level services`` in both formats, and ``--focus`` on a service with a step that runs in
    a recovery (one with none is a usage error, exit 2)."""
    plan = json.loads(path.read_text(encoding="utf-8"))
    variants: list[tuple[str, ...]] = [("--level", "services", "--format", f) for f in ("dot", "mermaid")]
    focus = [
        sid
        for sid, service in plan["services"].items()
        if any(step.get("only") != "drill" for step in service["steps"])
    ]
    if focus:
        variants.append(("--focus", focus[-1], "--format", "dot"))
        variants.append(("--focus", focus[0], "--format", "mermaid"))
    return variants


def _check_dot(source: str, args: tuple[str, ...]) -> None:
    """What ``graph --format dot`` wrote is DOT that Graphviz reads (when Graphviz is here)."""
    dot = shutil.which("dot")
    if dot is None:
        return
    done = subprocess.run([dot, "-Tcanon"], input=source, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Error" not in done.stderr, (
        f"$ drplan {' '.join(args)} | dot -Tcanon\nGraphviz refuses the DOT drplan wrote:\n{done.stderr[-2000:]}"
    )


@dataclass(frozen=True)
class Drill:
    code: int
    stderr: str
    stdout: str


def drill(path: Path, workdir: Path) -> Drill:
    """``drplan drill PLAN --sandbox`` through the real entry point, in a subprocess."""
    args = [
        sys.executable,
        "-m",
        "drplan",
        "drill",
        str(path),
        "--sandbox",
        "--approve-all",
        "--allow-commands",
        "--state-dir",
        str(workdir / "state"),
    ]
    try:
        done = subprocess.run(
            args,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=DRILL_TIMEOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise AssertionError(
            f"$ drplan drill {path.name} --sandbox ...: still running after {DRILL_TIMEOUT:.0f}s\n"
            f"--- stderr (end) ---\n{err[-4000:]}"
        ) from None
    return Drill(done.returncode, done.stderr, done.stdout)


def check_drill(path: Path, workdir: Path) -> Drill:
    result = drill(path, workdir)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    shown = (
        f"$ drplan drill {path.name} --sandbox --approve-all --allow-commands --state-dir state\n"
        f"exit code: {result.code}\n--- stderr (end) ---\n" + "\n".join(lines[-40:])
    )
    assert result.code in (0, 1, 3), "drill: exit code not 0, 1 or 3\n" + shown
    assert "internal error" not in result.stderr, "drill: internal error\n" + shown
    assert "Traceback" not in result.stderr + result.stdout, "drill: traceback\n" + shown
    leaked = LEAKED.search(result.stderr)
    assert leaked is None, f"drill: a Python {leaked.group(1) if leaked else ''} in its output\n" + shown
    assert last.endswith(f"(exit {result.code})"), "drill: the last line does not end with (exit N)\n" + shown
    # Exit 3 is "interrupted, cleanup incomplete, or journal/evidence not written"; nothing
    # interrupts these drills, so a drill that says it was interrupted says something false.
    assert "interrupted" not in last, "drill: reported interrupted, but nothing interrupted it\n" + shown
    return result
