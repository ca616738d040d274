"""Installable as documented: the wheel built from this tree carries the schemas and the example
plans, and the quick start of README.md and docs/README.md works from a fresh virtualenv with
drplan installed from that wheel, in a folder outside the repository.

The virtualenv sees the system's site-packages (``--system-site-packages``), so the dependencies
(boto3, moto for ``--sandbox``...) need no network; drplan itself must come from the wheel, which
the test checks (``drplan.__file__`` is inside the virtualenv). Building the wheel uses pip's
build isolation, which fetches the build backend (hatchling) from the package index.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_PLANS, ROOT

pytestmark = pytest.mark.slow


def run(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def fenced_commands(markdown: str, after: str) -> list[str]:
    """The commands of the first ``sh``/``console`` block after the line starting with ``after``:
    one per line (``$ `` prompts removed, output lines of a console block skipped)."""
    text = markdown.split("\n" + after, 1)[1]
    match = re.search(r"```(sh|console)\n(.*?)```", text, flags=re.S)
    assert match, f"no command block after {after!r}"
    kind, body = match.groups()
    lines = [line for line in body.splitlines() if line.strip()]
    if kind == "console":
        return [line[2:] for line in lines if line.startswith("$ ")]
    return lines


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(the wheel, the virtualenv, an environment whose PATH starts with the virtualenv's bin)."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        cwd=base,
        env=dict(os.environ),
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("drplan-*.whl")
    venv = base / "venv"
    made = run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=base, env=dict(os.environ)
    )
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    # --no-deps --no-index: only the wheel is installed; its dependencies come from the system.
    done = run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        cwd=base,
        env=dict(os.environ),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return wheel, venv, env


def test_the_wheel_carries_both_schemas_and_the_example_plans(
    installed: tuple[Path, Path, dict[str, str]],
) -> None:
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"drplan/schemas/plan.schema.json", "drplan/schemas/report.schema.json"} <= names
    shipped = {n.rsplit("/", 1)[-1] for n in names if n.startswith("drplan/examples/")}
    assert shipped == {p.name for p in EXAMPLE_PLANS}
    with zipfile.ZipFile(wheel) as archive:
        for plan in EXAMPLE_PLANS:
            assert archive.read(f"drplan/examples/{plan.name}") == plan.read_bytes()
        assert (
            archive.read("drplan/schemas/plan.schema.json")
            == (ROOT / "schemas" / "plan.schema.json").read_bytes()
        )


def test_drplan_runs_from_the_wheel_outside_the_repository(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, venv, env = installed
    where = run(
        ["python", "-c", "import drplan, drplan.schema as s; print(drplan.__file__); print(s.schema_path())"],
        cwd=tmp_path,
        env=env,
    )
    assert where.returncode == 0, where.stderr
    module, schema = where.stdout.split()
    assert Path(module).resolve().is_relative_to(venv.resolve()), module  # not the source tree
    assert Path(schema).resolve().is_relative_to(venv.resolve()), schema  # the packaged schema
    assert shutil.which("drplan", path=env["PATH"]) == str(venv / "bin" / "drplan")
    printed = run(["drplan", "schema"], cwd=tmp_path, env=env)
    assert printed.returncode == 0 and printed.stdout == (ROOT / "schemas" / "plan.schema.json").read_text()


def test_the_readme_quick_starts_work_from_the_installed_wheel(
    installed: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    """docs/README.md's quick start is for an installed drplan: its commands run as written.
    README.md's is for a clone (`pip install -e ... && drplan drill plans/webshop.json ...`): from
    a wheel, the example is written first with the `drplan init --example` it names."""
    _, _, env = installed
    docs = fenced_commands((ROOT / "docs" / "README.md").read_text(), "Try it")
    assert docs[0].startswith("pip install") and "drplan[sandbox]" in docs[0]
    readme = fenced_commands((ROOT / "README.md").read_text(), "Try it")
    install, _, command = readme[0].partition(" && ")
    assert install == "pip install -e '.[sandbox]'" and command.startswith("drplan ")
    init = re.search(r"`(drplan init --example [^`]+)`", (ROOT / "README.md").read_text())
    assert init, "README.md no longer says how to get the example from an installed drplan"

    for name, commands in (("docs", docs[1:]), ("readme", [init[1], command, *readme[1:]])):
        folder = tmp_path / name
        folder.mkdir()
        for line in commands:
            done = run(shlex.split(line), cwd=folder, env=env)
            assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "PASSED: drill " in done.stderr
        assert (folder / "plans" / "webshop.json").read_bytes() == (
            ROOT / "plans" / "webshop.json"
        ).read_bytes()
