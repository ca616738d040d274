"""Write a recovery graph as a Mermaid flowchart (GitHub and GitLab render it in Markdown).

The same :class:`~drplan.render.view.View` as the DOT writer, so both diagrams agree. Mermaid
ids may only safely hold letters, digits and underscores (``end`` and ids starting with ``o`` or
``x`` after an arrow are traps), so every id gets a prefix (``n_`` step or service, ``s_``
subgraph, ``legend_``) and ``-`` / ``.`` become ``_`` / ``__``; the rare clash this mapping can
create (``orders-db`` next to ``orders_db``) is resolved with a counter, in plan order.
Labels are quoted, with Mermaid's entity codes for the characters its parser would trip on.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from drplan.render import style
from drplan.render.view import Cluster, Node, View, build_view

if TYPE_CHECKING:
    from drplan.graph import Analysis, RecoveryGraph

_ENTITIES = str.maketrans(
    {
        "#": "#35;",
        '"': "#quot;",
        "<": "#lt;",
        ">": "#gt;",
        "&": "#amp;",
        "`": "#96;",
        "\r": "",
        "\t": " ",
    }
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def render_mermaid(rg: RecoveryGraph, analysis: Analysis, *, level: str = "steps", title: bool = True) -> str:
    """Mermaid text of the plan; ``title=False`` leaves out the front-matter title."""
    return write_mermaid(build_view(rg, analysis, level=level), title=title)


def escape(text: str) -> str:
    """A label for inside ``"..."``: entity codes for ``# " < > & `` ` and ``<br/>`` for newlines."""
    text = text.translate(_ENTITIES)
    if not text.isprintable():
        text = "\n".join("".join(c if c.isprintable() else " " for c in line) for line in text.split("\n"))
    return text.replace("\n", "<br/>")


def label(lines: tuple[str, ...]) -> str:
    return '"' + escape("\n".join(lines)) + '"'


class _Ids:
    """Plan keys to Mermaid ids, unique and stable for a given plan."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, key: str, prefix: str = "n_") -> str:
        full = prefix + key
        found = self._ids.get(full)
        if found is not None:
            return found
        base = prefix + _UNSAFE.sub("_", key.replace(".", "__"))
        candidate, n = base, 1
        while candidate in self._taken:
            n += 1
            candidate = f"{base}_{n}"
        self._ids[full] = candidate
        self._taken.add(candidate)
        return candidate


def write_mermaid(view: View, *, title: bool = True) -> str:
    ids = _Ids()
    out: list[str] = []
    add = out.append
    if title:
        add("---")
        add("title: " + json.dumps(" — ".join(view.title), ensure_ascii=False))
        add("---")
    add("flowchart LR")
    by_class: dict[str, list[str]] = {}
    critical: list[str] = []

    def node(n: Node, indent: str) -> None:
        nid = ids(n.id)
        if n.family is not None:
            fam = style.FAMILIES[n.family]
            add(f"{indent}{nid}{fam.mermaid_open}{label(n.lines)}{fam.mermaid_close}")
            by_class.setdefault(f"f_{n.family}", []).append(nid)
        else:
            add(f"{indent}{nid}({label(n.lines)})")
            by_class.setdefault(_tier_class(n.tier), []).append(nid)
        if n.critical:
            critical.append(nid)

    def subgraph(cluster: Cluster, indent: str) -> None:
        add(f"{indent}subgraph {ids(cluster.id, 's_')}[{label(cluster.lines)}]")
        for n in cluster.nodes:
            node(n, indent + "  ")
        add(f"{indent}end")

    for region, text in view.regions:  # the plan's Regions around their services
        add(f"  subgraph {ids(region, 'r_')}[{label((text,))}]")
        for cluster in view.clusters:
            if cluster.region == region:
                subgraph(cluster, "    ")
        add("  end")
    for cluster in view.clusters:
        if cluster.region is None or not view.regions:
            subgraph(cluster, "  ")
    for n in view.nodes:
        node(n, "  ")

    link_styles: dict[str, list[int]] = {}
    for index, edge in enumerate(view.edges):
        arrow = style.MERMAID_CRITICAL_ARROW if edge.critical else style.MERMAID_ARROWS[edge.kind]
        add(f"  {ids(edge.tail)} {arrow} {ids(edge.head)}")
        if edge.critical:
            link_styles.setdefault("critical", []).append(index)
        elif edge.kind == "data":
            link_styles.setdefault("data", []).append(index)

    legend = _legend(view)
    if legend:
        add('  subgraph legend["Legend"]')
        for legend_id, text, cls, (shape_open, shape_close) in legend:
            add(f"    {legend_id}{shape_open}{label((text,))}{shape_close}")
            by_class.setdefault(cls, []).append(legend_id)
        add("  end")

    for name, fam in style.FAMILIES.items():
        if f"f_{name}" in by_class:
            add(f"  classDef f_{name} fill:{fam.fill},stroke:{fam.border},color:#000")
    for tier in view.tiers:
        ts = style.tier_style(tier)
        cls = _tier_class(tier)
        if cls in by_class:
            add(f"  classDef {cls} fill:{ts.fill},stroke:{ts.border},stroke-width:{ts.penwidth}px,color:#000")
    if "legend_critical" in by_class or critical:
        add(f"  classDef critical stroke:{style.CRITICAL},stroke-width:3px")
    for cls, members in by_class.items():
        add(f"  class {','.join(members)} {cls}")
    if critical:
        add(f"  class {','.join(critical)} critical")
    for cluster in view.clusters:
        ts = style.tier_style(cluster.tier)
        colour = f",color:{style.MISSED}" if cluster.missed else ""
        fill = f"fill:{ts.fill},stroke:{ts.border},stroke-width:{ts.penwidth}px{colour}"
        add(f"  style {ids(cluster.id, 's_')} {fill}")
    if legend:
        add("  style legend fill:#ffffff,stroke:#bbbbbb")
    if "critical" in link_styles:
        indexes = ",".join(map(str, link_styles["critical"]))
        add(f"  linkStyle {indexes} stroke:{style.CRITICAL},stroke-width:3px")
    if "data" in link_styles:
        add(f"  linkStyle {','.join(map(str, link_styles['data']))} stroke:{style.DATA_COLOUR}")
    return "\n".join(out) + "\n"


def _tier_class(tier: int | None) -> str:
    return f"t_{tier}" if tier is not None else "t_none"


def _legend(view: View) -> list[tuple[str, str, str, tuple[str, str]]]:
    """(id, text, class, shape) of each legend node: families, tiers, the critical path."""
    items = []
    for name in view.families:
        fam = style.FAMILIES[name]
        items.append((f"legend_f_{name}", fam.title, f"f_{name}", (fam.mermaid_open, fam.mermaid_close)))
    for tier in view.tiers:
        items.append(
            (f"legend_{_tier_class(tier)}", style.tier_style(tier).title, _tier_class(tier), ("(", ")"))
        )
    if view.critical:
        items.append(("legend_critical", "critical path", "critical", ("(", ")")))
    return items
