"""Translations of actions on one resource that exists before the run (an ECS service, an Auto
Scaling group): the resource is read with one describe call that lists it, found or missing,
picked out of the list, its settings from before the step remembered (the local
``StepContext.first_seen``) and put back by the undo.

The list is kept as ``{"n": length, "all": items}`` and the resource picked in a state of its own:
moto's interpreter returns a list for a field read right after an index (``$.Items[0].Field``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from drplan.stepfunctions.builder import Path, Scope, State
from drplan.stepfunctions.tasks import StepInfo, Translation, choice, fail, pass_state


class ExistingResource(Translation):
    #: What the resource is called in state names ("service", "group").
    noun: ClassVar[str]
    #: Where :meth:`describe` puts the listing.
    listed: ClassVar[str]
    #: What is remembered before the step: name in ``$.w.prev`` -> the resource's field.
    remembered: ClassVar[Mapping[str, str]]
    #: What was remembered, in the message when it was lost ("desired count", "capacity").
    what: ClassVar[str]

    def describe(self, info: StepInfo, then: str) -> State:
        """The describe task, its listing at :attr:`listed` as ``{"n", "all"}``."""
        raise NotImplementedError

    def where(self, info: StepInfo) -> str:
        """The resource as messages name it ("ECS service web")."""
        raise NotImplementedError

    def find(
        self,
        info: StepInfo,
        scope: Scope,
        tag: str,
        into: str,
        found: str,
        missing: str,
        at: str | None = None,
    ) -> str:
        """Describe, then ``missing`` when the listing is empty, else the resource at ``into`` and
        ``found``. ``at``: a name reserved for the describe state (a polling loop's)."""
        noun = self.noun
        pick = scope.add(
            info.label(f"{tag}the {noun}"),
            {"Type": "Pass", "InputPath": f"{self.listed}.all[0]", "ResultPath": into, "Next": found},
        )
        exists = scope.add(
            info.label(f"{tag}{noun} exists?"),
            choice([{"Variable": f"{self.listed}.n", "NumericEquals": 0, "Next": missing}], pick),
        )
        if at is not None:
            scope.put(at, self.describe(info, exists))
            return at
        return scope.add(info.label(f"{tag}describe {self.noun}"), self.describe(info, exists))

    def remembers(self, info: StepInfo) -> bool:
        return True

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The settings from before the step at ``$.w.prev``; a resource that is not there has
        nothing to put back (``{"none": true}``: the step then fails on it)."""
        kept = scope.add(
            info.label(f"before: keep the {self.what}"),
            pass_state(
                {k: Path(f"$.w.before.{f}") for k, f in self.remembered.items()}, then, result="$.w.prev"
            ),
        )
        nothing = scope.add(
            info.label(f"before: no {self.noun}"), pass_state({"none": True}, then, result="$.w.prev")
        )
        return self.find(info, scope, "before: ", "$.w.before", kept, nothing)

    def recall(self, info: StepInfo, scope: Scope, known: str, nothing: str) -> str:
        """The undo's first state: ``known`` with the remembered settings, ``nothing`` when the
        resource was not there before; when they were lost (the run ended by an unexpected error
        before writing the step's record), the undo fails rather than guess."""
        lost = scope.add(
            info.label(f"undo: previous {self.what} unknown"),
            fail(
                f"the {self.what} {info.key} replaced is not known (the run ended before writing its record): "
                f"check {self.where(info)} and set it by hand"
            ),
        )
        first = next(iter(self.remembered))
        return scope.add(
            info.label(f"undo: what was the {self.what}?"),
            choice(
                [
                    {"Variable": f"$.w.prev.{first}", "IsPresent": True, "Next": known},
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": nothing},
                ],
                lost,
            ),
        )
