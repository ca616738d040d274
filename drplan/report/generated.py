"""A generated section inside a hand-written Markdown page, and the command that refreshes it.

Pages such as docs/plan-format.md (the reference, from the schema) and docs/iam.md (the example
plans' policies) are prose except for one section between ``<!-- BEGIN GENERATED: MODULE -->``
and ``<!-- END GENERATED -->``. Each generator module calls :func:`refresh_main` with its own
markers and renderer; ``--check`` is what CI and the docs tests run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

END = "<!-- END GENERATED -->"


class MarkersMissing(ValueError):
    """The document has no BEGIN ... END section to fill."""


@dataclass(frozen=True)
class Section:
    begin: str  # ``<!-- BEGIN GENERATED: MODULE -->``
    padding: str  # what separates the markers from the generated text ("\n" or "\n\n")
    what: str  # for messages: "reference", "policies"

    def split(self, text: str) -> tuple[str, str, str]:
        """(before and including BEGIN, the generated text, END and after)."""
        start = text.find(self.begin)
        end = text.find(END, start + len(self.begin)) if start >= 0 else -1
        if start < 0 or end < 0:
            raise MarkersMissing(f"the document needs a {self.begin} ... {END} section")
        head = start + len(self.begin)
        return text[:head], text[head:end], text[end:]

    def update(self, text: str, generated: str) -> str:
        before, _, after = self.split(text)
        return before + self.padding + generated + self.padding + after


def refresh_main(
    argv: list[str] | None,
    *,
    prog: str,
    description: str,
    example: str,
    section: Section,
    render: Callable[[], str],
) -> int:
    """Rewrite (or, with ``--check``, verify) the section of a document: exit 0 when it is (now) up
    to date, 1 when ``--check`` finds it stale, 2 when the document cannot be read or has no
    section."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("document", type=Path, help=f"the Markdown file, e.g. {example}")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the section is out of date; change nothing"
    )
    args = parser.parse_args(argv)
    try:
        text = args.document.read_text(encoding="utf-8")
        fresh = section.update(text, render())
    except (OSError, MarkersMissing) as exc:
        print(f"{prog}: error: {args.document}: {exc}", file=sys.stderr)
        return 2
    if fresh == text:
        return 0
    if args.check:
        print(
            f"{args.document}: the generated {section.what} are out of date; run: {prog} {args.document}",
            file=sys.stderr,
        )
        return 1
    args.document.write_text(fresh, encoding="utf-8")
    print(f"{args.document}: {section.what} updated", file=sys.stderr)
    return 0
