"""Style tables shared by the diagram writers: one entry per action family, tier and edge kind.

Like the theme dictionaries of mingrammer/diagrams, the look lives in data, not in the writers:
change a colour here and both the DOT and the Mermaid output follow. Colours are chosen so that
the critical path (red) never collides with a fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EdgeKind = Literal["sequence", "depends", "data"]


@dataclass(frozen=True)
class FamilyStyle:
    title: str  # shown in the legend
    dot_shape: str
    fill: str
    border: str
    mermaid_open: str  # Mermaid node shape delimiters around the quoted label
    mermaid_close: str


@dataclass(frozen=True)
class TierStyle:
    title: str
    fill: str
    border: str
    penwidth: float


#: One per action family (``drplan.actions.base.Family``), in the order the legend lists them.
FAMILIES: dict[str, FamilyStyle] = {
    "backup": FamilyStyle("AWS Backup", "folder", "#fde2c4", "#c96f12", "[[", "]]"),
    "database": FamilyStyle("database", "cylinder", "#cfe2f3", "#2f6ea5", "[(", ")]"),
    "storage": FamilyStyle("storage (EBS, S3)", "box3d", "#d9ead3", "#4a8a3a", "[/", "/]"),
    "dns": FamilyStyle("DNS", "hexagon", "#e4d7f0", "#6f4a9e", "{{", "}}"),
    "compute": FamilyStyle("compute", "component", "#fff2b3", "#a68a00", "[", "]"),
    "check": FamilyStyle("check", "ellipse", "#e6f4ea", "#2e7d32", "([", "])"),
    "manual": FamilyStyle("manual (a person)", "trapezium", "#fce4ec", "#ad1457", "[/", "\\]"),
    "control": FamilyStyle("control (wait, command)", "box", "#eeeeee", "#757575", "(", ")"),
}
DEFAULT_FAMILY = "control"  # an action the catalogue does not know (a plugin that is not installed)

TIERS: dict[int, TierStyle] = {
    1: TierStyle("tier 1", "#fff1e0", "#e08a1e", 2.0),
    2: TierStyle("tier 2", "#eaf2fb", "#4a86c5", 1.5),
    3: TierStyle("tier 3", "#f1f1f1", "#8c8c8c", 1.2),
    4: TierStyle("tier 4", "#fafafa", "#b5b5b5", 1.0),
}
NO_TIER = TierStyle("no tier", "#ffffff", "#b5b5b5", 1.0)


def tier_style(tier: int | None) -> TierStyle:
    """The style of a tier (the schema allows 1 to 4; anything else is drawn as "no tier")."""
    return NO_TIER if tier is None else TIERS.get(tier, NO_TIER)


CRITICAL = "#c62828"
CRITICAL_PENWIDTH = 2.6
MISSED = "#c62828"  # a cluster label whose predicted RTO is over its objective
EDGE_COLOUR = "#555555"
DATA_COLOUR = "#8a8a8a"
FONT = "Helvetica,Arial,sans-serif"

#: DOT attributes per edge kind (sequence inside a service, depends_on between services, ${ref}).
DOT_EDGES: dict[str, str] = {
    "sequence": "",
    "depends": "",
    "data": 'style=dashed, color="' + DATA_COLOUR + '", arrowhead=vee',
}
#: Mermaid arrows per edge kind; the critical path uses a thick arrow.
MERMAID_ARROWS: dict[str, str] = {"sequence": "-->", "depends": "-->", "data": "-.->"}
MERMAID_CRITICAL_ARROW = "==>"
