"""Diagram writers: golden DOT and Mermaid for every example plan, escaping, focus, levels, dot.

Golden files live in tests/golden/ (<plan>.dot, <plan>.mmd and a few webshop variants). After a
deliberate change to the diagrams, regenerate them and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_render.py
"""

from __future__ import annotations

import os
import re
import shutil
import xml.etree.ElementTree as ET
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_PLANS, PLANS
from hypothesis import given
from hypothesis import strategies as st

from drplan.actions import registry
from drplan.errors import GraphvizMissing, UsageError
from drplan.graph import Analysis, RecoveryGraph, analyse, compile_graph
from drplan.model import build_plan
from drplan.pipeline import load_plan
from drplan.render import auto_level, diagram, dot, graphviz, mermaid
from drplan.render.dot import quote, render_dot
from drplan.render.mermaid import escape, render_mermaid
from drplan.render.view import build_view, focus_graph

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)"
)
SVG = "{http://www.w3.org/2000/svg}"


def compiled(path: Path, mode: str = "recover") -> tuple[RecoveryGraph, Analysis]:
    plan, _ = load_plan(path)
    rg = compile_graph(plan, mode)  # type: ignore[arg-type]
    return rg, analyse(rg, registry())


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.is_file(), (
        f"missing golden file {path}; run UPDATE_GOLDEN=1 python -m pytest tests/test_render.py"
    )
    assert text == path.read_text(encoding="utf-8"), (
        f"{name} differs; if intended, regenerate with UPDATE_GOLDEN=1"
    )


# --- golden files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLE_PLANS, ids=lambda p: p.stem)
def test_golden_dot(path: Path) -> None:
    rg, analysis = compiled(path)
    check_golden(f"{path.stem}.dot", render_dot(rg, analysis))


@pytest.mark.parametrize("path", EXAMPLE_PLANS, ids=lambda p: p.stem)
def test_golden_mermaid(path: Path) -> None:
    rg, analysis = compiled(path)
    check_golden(f"{path.stem}.mmd", render_mermaid(rg, analysis))


VARIANTS: dict[str, dict[str, Any]] = {
    "webshop.services": {"level": "services"},
    "webshop.focus-orders-db": {"focus": "orders-db"},
    "webshop.drill": {"mode": "drill"},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_golden_webshop_variants(name: str) -> None:
    options = dict(VARIANTS[name])
    rg, analysis = compiled(PLANS / "webshop.json", options.pop("mode", "recover"))
    check_golden(f"{name}.dot", render_dot(rg, analysis, **options))
    focus = options.pop("focus", None)
    if focus:
        rg, analysis = focus_graph(rg, analysis, focus)
    check_golden(f"{name}.mmd", render_mermaid(rg, analysis, **options))


def test_every_example_plan_has_golden_files() -> None:
    expected = {f"{p.stem}{ext}" for p in EXAMPLE_PLANS for ext in (".dot", ".mmd")}
    expected |= {f"{name}{ext}" for name in VARIANTS for ext in (".dot", ".mmd")}
    present = {p.name for p in GOLDEN.iterdir() if p.suffix in (".dot", ".mmd")}
    assert expected <= present
    assert not {n for n in present - expected if n.split(".")[0] in {p.stem for p in EXAMPLE_PLANS}}, (
        "stale golden files"
    )


# --- what the diagram shows -----------------------------------------------------------------------


def test_clusters_nodes_and_service_dependencies() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    text = render_dot(rg, analysis)
    assert 'subgraph "cluster_orders-db" {' in text
    assert 'label="orders-db · tier 1\\nRTO 45m · predicted 27m · RPO 15m"' in text
    # depends_on: last step of the dependency -> first step of the dependent, clipped at the clusters
    assert '"carts.restore" -> "web.approve" [ltail="cluster_carts", lhead="cluster_web"];' in text
    # a ${reference} is a dashed "data" edge
    assert '"orders-db.restore" -> "web.dns" [style=dashed' in text
    assert "compound=true" in text and "ortho" not in text


def test_critical_path_is_emphasised() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    text = render_dot(rg, analysis)
    path = analysis.critical_path
    assert path[0] == "orders-db.restore" and path[-1] == "web.healthy"
    for tail, head in pairwise(path):
        line = next(line for line in text.splitlines() if line.strip().startswith(f'"{tail}" -> "{head}"'))
        assert 'color="#c62828"' in line and "penwidth=2.6" in line
    carts = next(line for line in text.splitlines() if line.strip().startswith('"carts.restore" ['))
    assert "#c62828" not in carts
    assert '"_legend_critical"' in text


def test_legend_has_one_sample_per_family_present() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    text = render_dot(rg, analysis)
    legend = text[text.index("subgraph cluster_legend") :]
    for family in ("database", "storage", "dns", "compute", "check", "manual"):
        assert f'"_legend_{family}"' in legend
    assert '"_legend_backup"' not in legend  # no AWS Backup step in the web shop
    rg, analysis = compiled(PLANS / "payments-backup.json")
    assert '"_legend_backup" [label="AWS Backup", shape=folder' in render_dot(rg, analysis)


def test_title_has_name_format_sha_and_date_only_when_asked() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    text = render_dot(rg, analysis)
    first = text.splitlines()[0]
    assert first == f"// webshop · drplan format 1 · sha256 {rg.plan.sha256[:12]}"
    assert "generated" not in text
    dated = render_dot(rg, analysis, generated="2024-06-11", sha256="ab" * 32)
    assert "sha256 abababababab" in dated and "\\ngenerated 2024-06-11" in dated


def test_drill_mode_drops_recover_only_steps() -> None:
    rg, analysis = compiled(PLANS / "webshop.json", "drill")
    text = render_dot(rg, analysis)
    assert '"web.approve"' not in text and '"web.healthy"' not in text
    assert '"web.scale"' in text and "drill · predicted RTO 37m" in text


def test_services_level_one_node_per_service() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    view = build_view(rg, analysis, level="services")
    assert [n.id for n in view.nodes] == ["orders-db", "carts", "media", "assets", "web"]
    assert [(e.tail, e.head, e.critical) for e in view.edges] == [
        ("orders-db", "web", True),
        ("carts", "web", False),
        ("media", "web", False),
        ("assets", "web", False),
    ]
    assert 'subgraph "cluster_' not in render_dot(rg, analysis, level="services")


def test_focus_draws_the_service_and_everything_upstream() -> None:
    rg, analysis = compiled(PLANS / "analytics-aurora.json")
    focused, cut = focus_graph(rg, analysis, "warehouse")
    assert set(focused.graph) == {"warehouse.restore", "warehouse.reachable"}
    assert cut.critical_path == analysis.service_paths["warehouse"]
    assert cut.predicted_rto == analysis.service_rto["warehouse"]
    focused, _ = focus_graph(rg, analysis, "dashboards")
    assert set(focused.graph) == set(rg.graph)
    text = render_dot(rg, analysis, focus="warehouse")
    assert "warehouse and everything upstream" in text and "billing-replica" not in text
    with pytest.raises(UsageError):
        focus_graph(rg, analysis, "nope")


def test_unknown_level_is_refused() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    with pytest.raises(ValueError, match="level"):
        render_dot(rg, analysis, level="clusters")


def test_output_is_deterministic_in_process() -> None:
    first = [render_dot(*compiled(p)) + render_mermaid(*compiled(p)) for p in EXAMPLE_PLANS]
    second = [render_dot(*compiled(p)) + render_mermaid(*compiled(p)) for p in EXAMPLE_PLANS]
    assert first == second


def test_big_graphs_bound_dots_search(monkeypatch: pytest.MonkeyPatch) -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    assert "nslimit" not in render_dot(rg, analysis)
    monkeypatch.setattr(dot, "BIG_GRAPH_NODES", 3)
    assert "nslimit=0.2" in render_dot(rg, analysis)


def test_auto_level(monkeypatch: pytest.MonkeyPatch) -> None:
    import drplan.render

    rg, _ = compiled(PLANS / "webshop.json")
    assert auto_level(rg) == "steps"
    monkeypatch.setattr(drplan.render, "AUTO_SERVICES_ABOVE", 5)
    assert auto_level(rg) == "services"


# --- escaping -------------------------------------------------------------------------------------

EVIL = 'Say "hi" \\N to <b>&</b> #1 `x`'


def evil_plan() -> dict[str, Any]:
    return {
        "drplan": 1,
        "name": 'evil "plan"',
        "services": {
            "orders-db": {
                "tier": 1,
                "steps": [{"id": "restore", "name": EVIL, "uses": "wait", "with": {"duration": "PT1M"}}],
            },
            "orders_db": {
                "depends_on": ["orders-db"],
                "description": 'line one\nline "two"',
                "steps": [
                    {"id": "restore", "uses": "manual", "with": {"instructions": "x"}, "estimate": "PT5M"}
                ],
            },
        },
    }


def evil_graph() -> tuple[RecoveryGraph, Analysis]:
    rg = compile_graph(build_plan(evil_plan()), "recover")
    return rg, analyse(rg, registry())


def test_dot_quote() -> None:
    assert quote('a "b" \\c\nd\r\ne') == '"a \\"b\\" \\\\c\\nd\\ne"'
    assert quote("tab\there") == '"tab here"'


def test_mermaid_escape() -> None:
    assert escape(EVIL) == "Say #quot;hi#quot; \\N to #lt;b#gt;#amp;#lt;/b#gt; #35;1 #96;x#96;"
    assert escape("two\nlines") == "two<br/>lines"


@given(st.text())
def test_dot_quote_is_one_valid_dot_string(text: str) -> None:
    assert re.fullmatch(r'"(?:[^"\\\n\r]|\\.)*"', quote(text))


@given(st.text())
def test_mermaid_labels_cannot_break_out(text: str) -> None:
    out = escape(text).replace("<br/>", "")
    assert not set(out) & set('"<>`\n\r')


def test_mermaid_ids_are_safe_and_unique() -> None:
    rg, analysis = evil_graph()
    text = render_mermaid(rg, analysis)
    ids = re.findall(r"^\s+(n_\w+)[\[({]", text, re.MULTILINE)
    assert ids == ["n_orders_db__restore", "n_orders_db__restore_2"]
    assert "subgraph s_orders_db[" in text and "subgraph s_orders_db_2[" in text
    assert "n_orders_db__restore ==> n_orders_db__restore_2" in text


@needs_dot
@pytest.mark.dot
def test_escaped_labels_survive_graphviz() -> None:
    rg, analysis = evil_graph()
    svg = ET.fromstring(graphviz.render(render_dot(rg, analysis), "svg"))
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    assert 'Say "hi" \\N to <b>&</b> #1' in texts and "`x`" in texts
    assert 'evil "plan" · drplan format 1' in texts


# --- Graphviz -------------------------------------------------------------------------------------


@needs_dot
@pytest.mark.dot
def test_svg_from_real_dot_has_a_node_per_step() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    data = diagram(rg, analysis, "svg")
    root = ET.fromstring(data)
    assert root.tag == f"{SVG}svg"
    nodes = {g.findtext(f"{SVG}title"): g for g in root.iter(f"{SVG}g") if g.get("class") == "node"}
    assert "orders-db.restore" in nodes
    assert set(rg.graph) <= set(nodes)
    clusters = {g.findtext(f"{SVG}title") for g in root.iter(f"{SVG}g") if g.get("class") == "cluster"}
    assert {"cluster_orders-db", "cluster_web", "cluster_legend"} <= clusters


@needs_dot
@pytest.mark.dot
@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG\r\n"), ("pdf", b"%PDF-")])
def test_binary_formats(fmt: str, magic: bytes) -> None:
    rg, analysis = compiled(PLANS / "status-page.json")
    assert diagram(rg, analysis, fmt).startswith(magic)


def test_missing_dot_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(graphviz.DOT_ENV, raising=False)
    with pytest.raises(GraphvizMissing) as info:
        graphviz.render("digraph {}", "svg")
    assert info.value.exit_code == 2
    for hint in ("apt-get install graphviz", "brew install graphviz", "https://graphviz.org/download/"):
        assert hint in str(info.value)
    rg, analysis = compiled(PLANS / "webshop.json")
    assert diagram(rg, analysis, "dot").startswith(b"// webshop")  # text formats need no Graphviz
    assert diagram(rg, analysis, "mermaid").startswith(b"---\ntitle:")


@needs_dot
def test_dot_failure_is_reported() -> None:
    from drplan.errors import DrplanError

    with pytest.raises(DrplanError, match="dot -Tsvg failed"):
        graphviz.render("digraph { this is not dot", "svg")


def test_markdown_fence_and_mermaid_date() -> None:
    rg, analysis = compiled(PLANS / "webshop.json")
    text = diagram(rg, analysis, "mermaid", markdown=True, generated="2024-06-11").decode()
    assert text.startswith("```mermaid\n---\n") and text.endswith("%% generated 2024-06-11\n```\n")


def test_focus_keeps_analysis_consistent() -> None:
    rg, analysis = compiled(PLANS / "payments-backup.json")
    focused, cut = focus_graph(rg, analysis, "ledger-db")
    assert set(cut.steps) == set(focused.graph)
    assert all(set(w) <= set(focused.graph) for w in cut.waves)
    assert replace(cut, steps={}) != replace(analysis, steps={})
    assert mermaid.render_mermaid(focused, cut).count("subgraph s_") == 1
