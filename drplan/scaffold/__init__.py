"""``drplan init``: a first plan that validates, so nobody starts from an empty file.

Three ways in:

- :func:`template`: a short plan to fill in by hand, every value to replace marked TODO;
- :func:`from_aws`: a draft of what an AWS estate has to recover, found by its tags
  (:mod:`.discover`) and written with drplan's own actions (:mod:`.draft`);
- :func:`example`: one of the example plans shipped in the package (the quick start uses them).

Every draft is checked with drplan's own validation before it is handed back (:func:`check`), so
what ``init`` writes is what ``drplan validate`` accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from drplan.scaffold.discover import Estate, Skipped, TagFilter, discover
from drplan.scaffold.draft import Draft, draft_from, fit_objective, plan_name, template

if TYPE_CHECKING:
    from drplan.aws import AwsAccess
    from drplan.pipeline import ValidationResult

__all__ = [
    "Draft",
    "Drafted",
    "Estate",
    "Skipped",
    "TagFilter",
    "check",
    "draft_estate",
    "example",
    "examples",
    "from_aws",
    "plan_name",
    "render",
    "template",
]


def examples_dir() -> Path:
    """The example plans: packaged in the wheel (``drplan/examples``), or the repository's ``plans/``."""
    packaged = Path(__file__).resolve().parent.parent / "examples"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "plans"


def examples() -> list[str]:
    """The names of the shipped example plans (``webshop``, ``status-page``...)."""
    return sorted(p.stem for p in examples_dir().glob("*.json"))


def example(name: str) -> bytes:
    """The example plan ``name``, byte for byte as shipped."""
    if name not in examples():
        raise KeyError(name)
    return (examples_dir() / f"{name}.json").read_bytes()


def render(draft: Draft) -> bytes:
    return (json.dumps(draft.document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def check(data: bytes, display_path: str) -> ValidationResult:
    """drplan's validation of a plan's bytes, exactly as ``drplan validate`` runs it."""
    from drplan.document import read_document
    from drplan.pipeline import validate_document

    return validate_document(read_document(display_path, data=data))


@dataclass
class Drafted:
    """What ``init --from-aws`` found and wrote."""

    estate: Estate
    draft: Draft


def from_aws(aws: AwsAccess, region: str, tags: tuple[TagFilter, ...], *, name: str | None = None) -> Drafted:
    """Discover the resources in ``region`` carrying ``tags`` and draft their plan."""
    estate = discover(aws, region, tags)
    return Drafted(estate, draft_estate(estate, name=name))


def draft_estate(estate: Estate, *, name: str | None = None) -> Draft:
    """The draft plan of what discovery found. The placeholder RTO is raised to the draft's
    predicted RTO when the estimates alone exceed it: a draft must validate, and DR302 is an error."""
    draft = draft_from(estate, name=name)
    if draft.document["services"]:
        predicted = _predicted_rto(draft)
        if predicted is not None:
            fit_objective(draft, predicted)
    return draft


def _predicted_rto(draft: Draft) -> timedelta | None:
    from drplan.dryrun import build_dry_run

    result = check(render(draft), "<draft>")
    if result.plan is None:
        return None
    return build_dry_run(result.plan, "recover").predicted_rto
