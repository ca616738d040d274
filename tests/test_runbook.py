"""``drplan docs``: the Markdown runbook (drplan/report/runbook.py).

Golden files: tests/golden/<plan>.runbook.md for every example plan. Regenerate after an
intended change and review the diff:

    UPDATE_GOLDEN=1 python -m pytest tests/test_runbook.py tests/test_review_cli.py

The runbook embeds the Mermaid diagram of drplan/render/mermaid.py. While that module is
missing, the runbooks are compared without their diagram section and the tests say so (skipped,
with the reason); regenerate the golden files once it exists.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from drplan.cli import cli
from drplan.dryrun import build_dry_run
from drplan.model import build_plan
from drplan.pipeline import load_plan
from drplan.report.runbook import render_runbook
from tests.conftest import EXAMPLE_PLANS, PLANS, ROOT

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
HAVE_MERMAID = importlib.util.find_spec("drplan.render.mermaid") is not None
MERMAID_MISSING = "drplan/render/mermaid.py does not exist yet: the runbook's diagram section is not checked"
DIAGRAM = re.compile(r"## Diagram\n\n```mermaid\n.*?\n```\n\n", re.DOTALL)


def without_diagram(text: str) -> str:
    return DIAGRAM.sub("", text)


def runbook_of(name: str, *args: str) -> str:
    result = CliRunner().invoke(
        cli, ["docs", f"plans/{name}", *args, *([] if HAVE_MERMAID else ["--no-diagram"])]
    )
    assert result.exit_code == 0, result.output
    return str(result.stdout)


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # plan paths in the runbooks are `plans/<file>`


@pytest.mark.parametrize("plan", EXAMPLE_PLANS, ids=lambda p: p.stem)
def test_runbook_golden(plan: Path) -> None:
    text = runbook_of(plan.name)
    path = GOLDEN / f"{plan.stem}.runbook.md"
    if UPDATE:
        path.write_text(text, encoding="utf-8", newline="\n")
    assert path.exists(), f"no golden file {path}; create it with UPDATE_GOLDEN=1"
    golden = path.read_text(encoding="utf-8")
    if HAVE_MERMAID:
        assert "```mermaid" in golden, f"{path.name} has no diagram: regenerate it with UPDATE_GOLDEN=1"
        assert text == golden, f"{path.name} changed; if intended, regenerate with UPDATE_GOLDEN=1"
    else:
        assert text == without_diagram(golden), (
            f"{path.name} changed; if intended, regenerate with UPDATE_GOLDEN=1"
        )
        pytest.skip(MERMAID_MISSING + " (the rest of the runbook matched)")


def test_diagram_is_the_mermaid_renderer_output() -> None:
    if not HAVE_MERMAID:
        pytest.skip(MERMAID_MISSING)
    from drplan.render.mermaid import render_mermaid

    plan, _ = load_plan(PLANS / "webshop.json")
    dry = build_dry_run(plan)
    assert dry.graph is not None and dry.analysis is not None
    diagram = render_mermaid(dry.graph, dry.analysis, level="steps", title=False).rstrip("\n")
    assert f"## Diagram\n\n```mermaid\n{diagram}\n```\n" in render_runbook(dry)
    assert "```mermaid" not in render_runbook(dry, diagram=False)


# --- what a person needs with the tooling down ----------------------------------------------------


@pytest.fixture(scope="module")
def webshop() -> str:
    plan, _ = load_plan(PLANS / "webshop.json")
    return render_runbook(build_dry_run(plan), diagram=False)


def test_title_description_owner_and_contacts(webshop: str) -> None:
    assert webshop.startswith("# Recovery runbook: webshop\n\nThe web shop: orders in RDS PostgreSQL")
    assert "| Owner | team-shop |" in webshop
    assert "| AWS | region `us-east-1`, account `123456789012` |" in webshop
    contacts = "| role | name | contact |\n| --- | --- | --- |\n"
    assert contacts + "| incident-commander | Shop on-call | pager:shop-primary |\n" in webshop
    assert "| approver | Head of e-commerce | +1-555-0100 |" in webshop


def test_objectives_for_the_plan_and_each_service(webshop: str) -> None:
    assert "| **plan** | | team-shop | 2h | 1h | 50m | met |" in webshop
    assert "| orders-db | 1 | team-shop | 45m | 15m | 27m | met |" in webshop
    assert "| media | 3 | team-content | 2h (plan) | 1h (plan) | 10m | met |" in webshop  # inherited


def test_order_of_recovery_by_wave(webshop: str) -> None:
    section = webshop.split("## Order of recovery")[1].split("\n## ")[0]
    assert "1. **Wave 1**\n   - Step 1: Restore orders DB (`orders-db.restore`), +0m → +25m 🔺\n" in section
    assert "   - Step 4: Rewind assets bucket (`assets.rewind`), +0m → +5m\n" in section
    assert "6. **Wave 6**\n   - Step 9: Storefront is healthy (`web.healthy`), +47m → +50m 🔺" in section
    assert "Critical path (50m): step 1 → step 5 → step 6 → step 7 → step 8 → step 9." in section


def test_each_step_in_plain_words_with_estimate_timeout_retries_and_parameters(webshop: str) -> None:
    step1 = webshop.split("### Step 1: Restore orders DB\n")[1].split("### Step 2")[0]
    assert (
        "Create DB instance shop-orders-restored from the latest snapshot of DB instance shop-orders."
        in step1
    )
    assert "- **Estimate:** 25m\n- **Timeout:** 1h\n- **Retries:** 1\n" in step1
    assert "| `source_instance` | `shop-orders` |" in step1
    assert '| `security_groups` | `["sg-0a1b2c3d4e5f60718"]` |' in step1
    assert "- **In drills:** `target` is `shop-orders-restored-drill-<run-id>`" in step1  # drill note


def test_manual_steps_are_highlighted_with_the_role(webshop: str) -> None:
    assert (
        "> **MANUAL** by the **approver** (Head of e-commerce, +1-555-0100)\n>\n"
        "> Confirm the restored orders DB has the latest orders you expect" in webshop
    )
    approve = webshop.split("### Step 6: Approve the cut-over")[1].split("### Step 7")[0]
    assert "- **Runs:** only in real recoveries" in approve  # the `only` restriction
    assert "- **In drills:** not run: only in real recoveries" in approve


def test_checks_and_references_are_called_out(webshop: str) -> None:
    assert (
        "> **CHECK**: Check that ${orders-db.restore.endpoint}:${orders-db.restore.port} accepts TCP"
        in webshop
    )
    assert (
        "`${orders-db.restore.endpoint}` is the `endpoint` output of step 1 (`orders-db.restore`)" in webshop
    )


def test_drill_notes(webshop: str) -> None:
    assert "- **In drills:** `name` is `shop-media-drill-<run-id>`; `attach` is left out" in webshop
    assert (
        "- **In drills:** `zone_id` is `Z0SHOPDRILL12345`; `name` is `orders-db.drill.shop.example.com`"
        in webshop
    )
    scale = webshop.split("### Step 7: Scale web tier")[1].split("### Step 8")[0]
    assert "- **In drills:** not run: it would change production" in scale
    assert "## Drills\n" in webshop and "- **Tags:** `cost-center=dr-drills`" in webshop


def test_drill_runbook_lists_skipped_steps_and_real_recovery_notes() -> None:
    plan, _ = load_plan(PLANS / "webshop.json")
    text = render_runbook(build_dry_run(plan, "drill"), diagram=False)
    assert text.startswith("# Drill runbook: webshop\n")
    assert "## Not run in a drill\n" in text
    assert "- `web.scale` (Scale web tier): it would change production in a drill" in text
    assert "- **In a real recovery:** `target` is `shop-orders-restored`" in text


def test_defaulted_estimates_and_missing_timeouts_are_said() -> None:
    plan = build_plan(
        {
            "drplan": 1,
            "name": "tiny",
            "services": {"a": {"steps": [{"id": "pause", "uses": "wait", "with": {"duration": "PT3M"}}]}},
        }
    )
    text = render_runbook(build_dry_run(plan), diagram=False)
    assert "- **Estimate:** 3m (typical for `wait`; the plan gives none)\n" in text
    assert "- **Timeout:** 12m (the plan gives none: 4 times the estimate, at least 5m)\n" in text
    assert "## Contacts" not in text  # no contacts, no empty table


def test_no_date_unless_asked(webshop: str) -> None:
    assert not re.search(r"\b20\d\d-\d\d-\d\d", webshop)
