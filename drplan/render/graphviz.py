"""The only module that runs Graphviz: DOT text in, SVG / PNG / PDF bytes out.

Everything else in drplan writes DOT as plain text and works without Graphviz; only rendering an
image needs the ``dot`` binary, run through the ``graphviz`` package (:func:`graphviz.pipe`), and
when it is missing the error says how to install it.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from drplan.errors import DrplanError, GraphvizMissing

#: Formats ``dot -T`` is asked for.
IMAGE_FORMATS = ("svg", "png", "pdf")
#: Where to find the binary: ``$DRPLAN_DOT`` if set, else ``dot`` on the PATH.
DOT_ENV = "DRPLAN_DOT"
#: ``dpi`` (Graphviz's ``-Gdpi``): the range drplan accepts; Graphviz's own default is 96.
DPI_RANGE = (36, 1200)

INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS), "
    "or see https://graphviz.org/download/; `--format dot` and `--format mermaid` work without it"
)

#: The opening of a graph, up to its ``{``: ``digraph "name" {`` (a quoted name may hold a brace).
_OPENING = re.compile(r'^\s*(?:strict\s+)?(?:di)?graph\s*(?:"(?:[^"\\]|\\.)*"|[\w.]+)?\s*\{', re.MULTILINE)


def with_dpi(dot_source: str, dpi: int) -> str:
    """``dot_source`` with the graph attribute ``dpi`` set, as ``dot -Gdpi=N`` would set it: the
    ``graphviz`` package passes no extra arguments to ``dot``, so it goes into the text."""
    low, high = DPI_RANGE
    if not low <= dpi <= high:
        raise ValueError(f"dpi must be between {low} and {high}, not {dpi}")
    opening = _OPENING.search(dot_source)
    if opening is None:
        raise ValueError("no `digraph ... {` line to put the dpi after")
    return f"{dot_source[: opening.end()]}\n  dpi={dpi};{dot_source[opening.end() :]}"


def render(dot_source: str, fmt: str, *, dpi: int | None = None) -> bytes:
    """Lay out ``dot_source`` with ``dot -T<fmt>``; raise :class:`GraphvizMissing` without Graphviz.

    ``dpi`` sets the resolution of the image (for PNG: pixels per inch; Graphviz's default is 96).
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"cannot render {fmt!r} with dot; use one of {', '.join(IMAGE_FORMATS)}")
    import graphviz

    if dpi is not None:
        dot_source = with_dpi(dot_source, dpi)
    configured = os.environ.get(DOT_ENV)
    try:
        data = _pipe(fmt, dot_source.encode("utf-8"), configured)
    except graphviz.ExecutableNotFound as exc:
        where = (
            f": ${DOT_ENV} names {configured}, which is not there"
            if configured
            else ", which is not on the PATH"
        )
        raise GraphvizMissing(
            f"rendering {fmt.upper()} needs Graphviz's `dot`{where}", hint=INSTALL_HINT
        ) from exc
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr or b""
        detail = (stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else str(stderr)).strip()
        raise DrplanError(f"dot -T{fmt} failed (exit {exc.returncode}): {detail or 'no message'}") from exc
    except OSError as exc:  # found but not runnable (permissions, a broken install)
        raise GraphvizMissing(f"cannot run Graphviz's `dot`: {exc}", hint=INSTALL_HINT) from exc
    return data


_BINARY = threading.Lock()


def _pipe(fmt: str, data: bytes, binary: str | None) -> bytes:
    """``graphviz.pipe`` with ``dot`` or the binary ``$DRPLAN_DOT`` names. The package runs the
    binary its ``dot_command.DOT_BINARY`` names (``dot``): set it for this call, under a lock."""
    import graphviz
    from graphviz.backend import dot_command

    with _BINARY:
        dot_command.DOT_BINARY = Path(binary) if binary else Path("dot")
        try:
            out: bytes = graphviz.pipe("dot", fmt, data, quiet=True)
        finally:
            dot_command.DOT_BINARY = Path("dot")
    return out
