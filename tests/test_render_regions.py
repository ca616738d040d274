"""A plan whose steps run in several Regions is drawn with the Regions as clusters around their
services (DOT and Mermaid); a plan in one Region is drawn as before."""

from __future__ import annotations

from typing import Any

import pytest

from drplan.actions import registry
from drplan.graph import analyse, compile_graph
from drplan.model import build_plan
from drplan.render.dot import render_dot
from drplan.render.mermaid import render_mermaid


def plan_data(*, secondary_region: str = "${regions.recovery}") -> dict[str, Any]:
    return {
        "drplan": 1,
        "name": "two-regions",
        "regions": {"primary": "us-east-1", "recovery": "us-west-2"},
        "aws": {"region": "${regions.primary}"},
        "services": {
            "db": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                        "region": secondary_region,
                        "estimate": "PT10M",
                    }
                ]
            },
            "web": {
                "depends_on": ["db"],
                "steps": [{"id": "ready", "uses": "check.tcp", "with": {"host": "example.com", "port": 443}}],
            },
            "both": {
                "depends_on": ["db"],
                "steps": [
                    {"id": "east", "uses": "check.tcp", "with": {"host": "a.example.com", "port": 443}},
                    {
                        "id": "west",
                        "uses": "check.tcp",
                        "with": {"host": "b.example.com", "port": 443},
                        "region": "${regions.recovery}",
                    },
                ],
            },
        },
    }


def drawn(data: dict[str, Any]) -> tuple[str, str]:
    rg = compile_graph(build_plan(data), "recover")
    analysis = analyse(rg, registry())
    return render_dot(rg, analysis), render_mermaid(rg, analysis)


def test_each_region_is_a_cluster_around_its_services() -> None:
    dot, mermaid = drawn(plan_data())
    # Each Region named as the plan names it.
    assert 'subgraph "cluster_region_us-west-2" {' in dot and 'label="us-west-2 (recovery)"' in dot
    assert 'subgraph "cluster_region_us-east-1" {' in dot and 'label="us-east-1 (primary)"' in dot
    west = dot.split('subgraph "cluster_region_us-west-2" {', 1)[1].split("\n  }\n", 1)[0]
    east = dot.split('subgraph "cluster_region_us-east-1" {', 1)[1].split("\n  }\n", 1)[0]
    assert 'subgraph "cluster_db"' in west and '"db.restore"' in west
    assert 'subgraph "cluster_web"' in east and "cluster_db" not in east
    # A service with steps in both Regions stays outside them, drawn once.
    assert dot.count('subgraph "cluster_both"') == 1
    assert 'subgraph "cluster_both"' not in west and 'subgraph "cluster_both"' not in east
    # Mermaid nests the same way.
    assert '  subgraph r_us_west_2["us-west-2 (recovery)"]\n    subgraph s_db[' in mermaid
    assert '  subgraph r_us_east_1["us-east-1 (primary)"]\n    subgraph s_web[' in mermaid
    assert "\n  subgraph s_both[" in mermaid  # at the top level, outside both Regions


@pytest.mark.parametrize("where", ["${regions.primary}", "us-east-1"])
def test_one_region_draws_no_region_clusters(where: str) -> None:
    data = plan_data(secondary_region=where)
    data["services"]["both"]["steps"][1]["region"] = where
    dot, mermaid = drawn(data)
    assert "cluster_region_" not in dot and "us-east-1" not in mermaid
