"""Diagrams of a recovery graph: DOT and Mermaid writers, and the one module that runs ``dot``.

- :mod:`drplan.render.view` decides *what* a diagram shows (clusters, nodes, edges, title,
  legend) from a :class:`~drplan.graph.RecoveryGraph` and its :class:`~drplan.graph.Analysis`;
- :mod:`drplan.render.dot` and :mod:`drplan.render.mermaid` write it as text (pure functions,
  byte-identical output for the same plan);
- :mod:`drplan.render.style` holds the style tables (families, tiers, edges);
- :mod:`drplan.render.graphviz` is the only module that runs Graphviz's ``dot`` (through the
  ``graphviz`` package).

This module holds the format registry the CLI uses and :func:`diagram`, which turns a graph into
the bytes of one format. Submodules are imported when used, so importing it costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drplan.graph import Analysis, RecoveryGraph

FORMATS: tuple[str, ...] = ("dot", "svg", "png", "pdf", "mermaid")
#: Output file suffix -> format (``.md`` is Mermaid inside a ```mermaid fence).
SUFFIXES: dict[str, str] = {
    ".dot": "dot",
    ".gv": "dot",
    ".svg": "svg",
    ".png": "png",
    ".pdf": "pdf",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",
}
BINARY_FORMATS = frozenset({"png", "pdf"})

#: ``--level auto`` draws one node per service when a graph has more steps than this: beyond it
#: a step diagram is unreadable and dot takes seconds to minutes to lay it out (docs/diagrams.md).
AUTO_SERVICES_ABOVE = 2000


def auto_level(rg: RecoveryGraph) -> str:
    """``steps``, or ``services`` for graphs of more than :data:`AUTO_SERVICES_ABOVE` steps."""
    return "services" if rg.graph.number_of_nodes() > AUTO_SERVICES_ABOVE else "steps"


def diagram(
    rg: RecoveryGraph,
    analysis: Analysis,
    fmt: str,
    *,
    level: str = "steps",
    markdown: bool = False,
    generated: str | None = None,
    dpi: int | None = None,
) -> bytes:
    """The diagram in one of :data:`FORMATS`; ``markdown`` wraps Mermaid in a ```mermaid fence;
    ``dpi`` sets the resolution of a PNG (Graphviz's ``dpi``; its default is 96).

    Focus first with :func:`drplan.render.view.focus_graph` to draw one service and its upstream.
    Only SVG, PNG and PDF need Graphviz (:mod:`drplan.render.graphviz`).
    """
    if fmt == "mermaid":
        from drplan.render.mermaid import render_mermaid

        text = render_mermaid(rg, analysis, level=level)
        if generated:
            text += f"%% generated {generated}\n"
        if markdown:
            text = f"```mermaid\n{text}```\n"
        return text.encode("utf-8")
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}")
    from drplan.render.dot import render_dot

    source = render_dot(rg, analysis, level=level, generated=generated)
    if fmt == "dot":
        return source.encode("utf-8")
    from drplan.render.graphviz import render

    return render(source, fmt, dpi=dpi)
