"""Write a recovery graph as Graphviz DOT: a pure function from (graph, analysis) to text.

The text is built by joining strings (python-graphviz's ``Digraph`` is ~36x slower on a plan of
10,000 services) and is byte-identical for the same plan: node ids are the plan keys
(``"orders-db.restore"``), clusters are ``"cluster_<service>"``, and everything is written in the
plan's order (see :mod:`drplan.render.view`). Nothing here runs ``dot``: that is
:mod:`drplan.render.graphviz`.

Layout choices that keep ``dot`` fast on big estates: ordinary splines (never ``ortho``), and on
graphs of more than :data:`BIG_GRAPH_NODES` nodes a bounded network-simplex search
(``nslimit``/``nslimit1``) and a single crossing-minimisation pass (``mclimit``): at 1,000
services most of the time goes into placing long edges, and the bounds cut it several-fold for a
layout that is hardly worse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from drplan.render import style
from drplan.render.view import Cluster, Edge, Node, View, build_view, focus_graph

if TYPE_CHECKING:
    from drplan.graph import Analysis, RecoveryGraph

Add = Callable[[str], None]

#: Above this many drawn nodes, bound dot's search (see the module docstring).
BIG_GRAPH_NODES = 400
BIG_GRAPH_ATTRIBUTES = "nslimit=0.2, nslimit1=0.2, mclimit=0.2"


def render_dot(
    rg: RecoveryGraph,
    analysis: Analysis,
    *,
    level: str = "steps",
    focus: str | None = None,
    sha256: str = "",
    generated: str | None = None,
) -> str:
    """DOT text of the plan: services as clusters (or one node each with ``level="services"``).

    ``focus`` draws one service and everything upstream of it; ``sha256`` defaults to the plan's
    own; ``generated`` (a date) is put in the title only when given, so diagrams are reproducible.
    """
    if focus is not None:
        rg, analysis = focus_graph(rg, analysis, focus)
    return write_dot(build_view(rg, analysis, level=level, sha256=sha256, generated=generated))


def quote(text: str) -> str:
    r"""A DOT double-quoted string: backslashes and quotes escaped, line breaks as ``\n``.

    Escaping the backslash also stops Graphviz from expanding ``\N``, ``\G``, ``\l`` and friends
    that a plan's text might contain.
    """
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # the common case
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return f'"{text}"'


def label(lines: tuple[str, ...]) -> str:
    return quote("\n".join(lines))


def write_dot(view: View) -> str:
    out: list[str] = []
    add = out.append
    add("// " + view.title[0].replace("\n", " "))
    add("// Written by `drplan graph`; regenerate it rather than editing it.")
    add(f"digraph {quote(view.name)} {{")
    n_nodes = len(view.nodes) + sum(len(c.nodes) for c in view.clusters)
    big = f", {BIG_GRAPH_ATTRIBUTES}" if n_nodes > BIG_GRAPH_NODES else ""
    add(
        f'  graph [label={label(view.title)}, labelloc=t, labeljust=l, fontname="{style.FONT}", fontsize=14, '
        f"rankdir=LR, compound=true, newrank=true, nodesep=0.25, ranksep=0.5, pad=0.2{big}];"
    )
    add(
        f'  node [style=filled, fontname="{style.FONT}", fontsize=10, margin="0.12,0.05", '
        "height=0.4, penwidth=1];"
    )
    add(f'  edge [color="{style.EDGE_COLOUR}", arrowsize=0.7];')
    for region, text in view.regions:  # the plan's Regions around their services
        add(f"  subgraph {quote('cluster_region_' + region)} {{")
        add(
            f'    graph [label={quote(text)}, style="dashed", color="{style.EDGE_COLOUR}", '
            f'fontcolor="{style.EDGE_COLOUR}", fontsize=12];'
        )
        for cluster in view.clusters:
            if cluster.region == region:
                _cluster(add, cluster, "    ")
        add("  }")
    for cluster in view.clusters:
        if cluster.region is None or not view.regions:
            _cluster(add, cluster)
    for node in view.nodes:
        add("  " + _service_node(node))
    for edge in view.edges:
        add("  " + _edge(edge))
    _legend(add, view)
    add("}")
    return "\n".join(out) + "\n"


def _cluster(add: Add, cluster: Cluster, indent: str = "  ") -> None:
    tier = style.tier_style(cluster.tier)
    fontcolor = f', fontcolor="{style.MISSED}"' if cluster.missed else ""
    add(f"{indent}subgraph {quote('cluster_' + cluster.id)} {{")
    add(
        f"{indent}  graph [label={label(cluster.lines)}, tooltip={quote(cluster.tooltip)}, "
        f'style="rounded,filled", fillcolor="{tier.fill}", color="{tier.border}", penwidth={tier.penwidth}, '
        f"fontsize=11{fontcolor}];"
    )
    for node in cluster.nodes:
        add(f"{indent}  " + _step_node(node))
    add(f"{indent}}}")


def _step_node(node: Node) -> str:
    family = style.FAMILIES[node.family or style.DEFAULT_FAMILY]
    rounded = ', style="filled,rounded"' if family.dot_shape == "box" else ""
    return (
        f"{quote(node.id)} [label={label(node.lines)}, shape={family.dot_shape}{rounded}, "
        f'fillcolor="{family.fill}", {_border(node, family.border)}, tooltip={quote(node.tooltip)}];'
    )


def _service_node(node: Node) -> str:
    tier = style.tier_style(node.tier)
    return (
        f'{quote(node.id)} [label={label(node.lines)}, shape=box, style="filled,rounded", '
        f'fillcolor="{tier.fill}", {_border(node, tier.border)}, tooltip={quote(node.tooltip)}];'
    )


def _border(node: Node, colour: str) -> str:
    if node.critical:
        return f'color="{style.CRITICAL}", penwidth={style.CRITICAL_PENWIDTH}'
    return f'color="{colour}"'


def _edge(edge: Edge) -> str:
    attrs = []
    if edge.kind == "data":
        attrs.append(style.DOT_EDGES["data"])
    if edge.tail_cluster:
        attrs.append(f"ltail={quote(edge.tail_cluster)}, lhead={quote(edge.head_cluster or '')}")
    if edge.critical:
        attrs.append(f'color="{style.CRITICAL}", penwidth={style.CRITICAL_PENWIDTH}')
    text = f"{quote(edge.tail)} -> {quote(edge.head)}"
    return f"{text} [{', '.join(attrs)}];" if attrs else f"{text};"


def _legend(add: Add, view: View) -> None:
    """A cluster with one sample per family and tier drawn, and the critical path.

    Two columns (families | tiers and the critical path) tied by invisible edges keep it short.
    Legend ids start with ``_``, which plan ids cannot, so they never collide with a step.
    """
    left: list[tuple[str, str]] = []  # (id, attributes)
    for name in view.families:
        fam = style.FAMILIES[name]
        rounded = ', style="filled,rounded"' if fam.dot_shape == "box" else ""
        left.append(
            (
                f"_legend_{name}",
                f"label={quote(fam.title)}, shape={fam.dot_shape}{rounded}, "
                f'fillcolor="{fam.fill}", color="{fam.border}"',
            )
        )
    right: list[tuple[str, str]] = []
    for tier in view.tiers:
        ts = style.tier_style(tier)
        right.append(
            (
                f"_legend_tier_{tier if tier is not None else 'none'}",
                f'label={quote(ts.title)}, shape=box, style="filled,rounded", fillcolor="{ts.fill}", '
                f'color="{ts.border}", penwidth={ts.penwidth}',
            )
        )
    if view.critical:
        right.append(
            (
                "_legend_critical",
                f'label="critical path", shape=box, style="rounded", color="{style.CRITICAL}", '
                f'penwidth={style.CRITICAL_PENWIDTH}, fontcolor="{style.CRITICAL}"',
            )
        )
    if any(e.kind == "data" for e in view.edges):
        right.append(
            (
                "_legend_data",
                f'label="- - ->  uses an output", shape=plaintext, style="", fontcolor="{style.DATA_COLOUR}"',
            )
        )
    if not left:  # services level: one column is enough
        left, right = right, []
    add("  subgraph cluster_legend {")
    add('    graph [label="Legend", style="rounded", color="#bbbbbb", penwidth=1, fontsize=11];')
    add("    node [fontsize=9, height=0.3];")
    for node_id, attrs in left + right:
        add(f'    "{node_id}" [{attrs}];')
    for (a, _), (b, _) in zip(left, right, strict=False):  # the longer column has no partner
        add(f'    "{a}" -> "{b}" [style=invis];')
    add("  }")
