"""The only module that runs Graphviz's ``dot``: DOT text in, SVG / PNG / PDF bytes out.

Everything else in drplan writes DOT as plain text and works without Graphviz; only rendering
an image needs the binary, and when it is missing the error says how to install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from drplan.errors import DrplanError, GraphvizMissing

#: Formats ``dot -T`` is asked for.
IMAGE_FORMATS = ("svg", "png", "pdf")
#: Where to find the binary: ``$DRPLAN_DOT`` if set, else ``dot`` on the PATH.
DOT_ENV = "DRPLAN_DOT"

INSTALL_HINT = (
    "install Graphviz: `apt-get install graphviz` (Debian, Ubuntu), `brew install graphviz` (macOS), "
    "or see https://graphviz.org/download/; `--format dot` and `--format mermaid` work without it"
)


def dot_binary() -> str | None:
    """Path of the ``dot`` binary, or None when Graphviz is not installed."""
    configured = os.environ.get(DOT_ENV)
    if configured:
        return shutil.which(configured)
    return shutil.which("dot")


def render(dot_source: str, fmt: str) -> bytes:
    """Lay out ``dot_source`` with ``dot -T<fmt>``; raise :class:`GraphvizMissing` without Graphviz."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"cannot render {fmt!r} with dot; use one of {', '.join(IMAGE_FORMATS)}")
    binary = dot_binary()
    if binary is None:
        raise GraphvizMissing(
            f"rendering {fmt.upper()} needs Graphviz's `dot`, which is not on the PATH", hint=INSTALL_HINT
        )
    try:
        done = subprocess.run(
            [binary, f"-T{fmt}"], input=dot_source.encode("utf-8"), capture_output=True, check=False
        )
    except OSError as exc:  # found but not runnable (permissions, a broken install)
        raise GraphvizMissing(f"cannot run {binary}: {exc}", hint=INSTALL_HINT) from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()
        raise DrplanError(f"dot -T{fmt} failed (exit {done.returncode}): {detail or 'no message'}")
    return done.stdout
