"""The evidence's templates, compiled once per machine instead of once per drill: what is rendered
is byte for byte what compiling them afresh renders, a template whose source changed is compiled
again, the two dialects (autoescaping on and off) never share compiled code, and a cache that cannot
be written or read changes nothing but the time. Behaviour only: no timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader

from drplan.report import evidence
from tests.conftest import ROOT


@pytest.fixture
def fresh_environments() -> Iterator[None]:
    evidence._environment.cache_clear()
    yield
    evidence._environment.cache_clear()


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The evidence of a sandbox drill of the example web shop (a fault rehearsed, so the report has
    failed and skipped steps and missed objectives), rendered with an empty template cache."""
    cwd = tmp_path_factory.mktemp("drill")
    cache = cwd / "cache"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "drplan", "drill", str(ROOT / "plans" / "webshop.json")),
            *("--sandbox", "--yes", "--inject", "carts.restore:fail", "--report-dir", "evidence"),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache)},
    )
    assert done.returncode == 1, done.stderr
    return cwd / "evidence", cache


def _report(directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((directory / "report.json").read_text())
    return document


def test_the_drill_kept_its_compiled_templates_in_the_users_cache(drill):
    _, cache = drill
    kept = sorted(p.name.split("-")[0] for p in (cache / "drplan" / "templates").iterdir())
    assert kept == ["html"] * 3 + ["md"] * 3  # report.X.j2, the dialect's macros, report.j2


MERMAID = "graph TD\n  a --> b"
SVG = '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><text>a &lt; b</text></svg>'


def _rendered(report: dict[str, Any]) -> tuple[str, str]:
    return evidence.to_markdown(report, mermaid=MERMAID), evidence.to_html(report, mermaid=MERMAID, svg=SVG)


def test_cached_templates_render_byte_for_byte_what_compiling_afresh_renders(
    drill, tmp_path, monkeypatch, fresh_environments
):
    directory, _ = drill
    report = _report(directory)
    monkeypatch.setattr(evidence, "_template_cache", lambda dialect, env: None)
    afresh = _rendered(report)
    monkeypatch.undo()

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    evidence._environment.cache_clear()
    cold = _rendered(report)  # compiled, and kept
    evidence._environment.cache_clear()
    warm = _rendered(report)  # read back

    assert evidence._environment("md").bytecode_cache is not None
    assert len(list((tmp_path / "drplan" / "templates").iterdir())) == 6
    assert cold == afresh and warm == afresh
    assert "graph TD" in warm[0] and "a &lt; b" in warm[1]


def test_a_cache_that_cannot_be_written_changes_nothing(drill, tmp_path, monkeypatch, fresh_environments):
    directory, _ = drill
    report = _report(directory)
    expected = _rendered(report)
    evidence._environment.cache_clear()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))  # drplan/templates cannot be made under it

    assert _rendered(report) == expected
    assert evidence._environment("md").bytecode_cache is None


def test_a_damaged_cache_file_is_compiled_again(drill, tmp_path, monkeypatch, fresh_environments):
    directory, cache = drill
    report = _report(directory)
    expected = _rendered(report)
    evidence._environment.cache_clear()
    copied = tmp_path / "drplan" / "templates"
    copied.mkdir(parents=True)
    for kept in (cache / "drplan" / "templates").iterdir():
        (copied / kept.name).write_bytes(kept.read_bytes()[:40])  # cut short
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert _rendered(report) == expected


def _environment(templates: Path, cache: Path, dialect: str) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates)),
        autoescape=dialect == "html",
        bytecode_cache=evidence._CompiledTemplates(cache, dialect),
    )


def test_a_template_whose_source_changed_is_compiled_again(tmp_path):
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    cache.mkdir()
    (templates / "t.j2").write_text("one {{ x }}")
    assert _environment(templates, cache, "md").get_template("t.j2").render(x=1) == "one 1"

    (templates / "t.j2").write_text("two {{ x }}")

    assert _environment(templates, cache, "md").get_template("t.j2").render(x=1) == "two 1"


def test_the_dialects_never_share_compiled_code(tmp_path):
    """Autoescaping is compiled into a template: the same source compiled for HTML must not be
    taken for Markdown's, nor the other way round."""
    templates, cache = tmp_path / "templates", tmp_path / "cache"
    templates.mkdir()
    cache.mkdir()
    (templates / "t.j2").write_text("{{ x }}")

    for _ in range(2):  # compiled, then read back
        assert _environment(templates, cache, "html").get_template("t.j2").render(x="<b>") == "&lt;b&gt;"
        assert _environment(templates, cache, "md").get_template("t.j2").render(x="<b>") == "<b>"
    assert len(list(cache.iterdir())) == 2


def test_a_cache_directory_others_can_write_is_not_used(tmp_path, monkeypatch, fresh_environments):
    (tmp_path / "drplan" / "templates").mkdir(parents=True)
    (tmp_path / "drplan" / "templates").chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    assert evidence._environment("md").bytecode_cache is None
