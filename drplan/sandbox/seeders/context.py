"""What a seeder is given: the step's context, plus what the sandbox shares between seeders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from drplan.actions.base import StepContext
from drplan.sandbox.backup_emulator import BackupEmulator


@dataclass
class SeedContext(StepContext):
    """A step's :class:`~drplan.actions.base.StepContext` while the sandbox seeds for it.

    ``params`` are the plan's own parameters (not isolated), once as a recovery has them and, when
    the step has ``drill_with``, once as a drill has them (``mode`` says which). Clients reach the
    emulated AWS.
    """

    #: Shared by every seeder of one sandbox: what they learnt, such as the ids the emulator chose
    #: for what they created (keys in :mod:`drplan.sandbox.ids`).
    seed_state: dict[str, Any] = field(default_factory=dict)
    #: The sandbox's AWS Backup emulator (moto has no recovery points), None outside a sandbox.
    backup: BackupEmulator | None = None

    @classmethod
    def of(
        cls, ctx: StepContext, seed_state: dict[str, Any] | None = None, backup: BackupEmulator | None = None
    ) -> SeedContext:
        """``ctx`` as a seeder's context (what a test seeds with)."""
        values = {f.name: getattr(ctx, f.name) for f in fields(StepContext)}
        return cls(**values, seed_state={} if seed_state is None else seed_state, backup=backup)


#: ``seed_state[SEEDING]``: what the seeders of one :func:`~drplan.sandbox.seed.seed_plan` learn
#: while it runs, each under a name of its own (:func:`seeding_memo`). Seeding runs alone, before
#: the run: nothing but its seeders changes the emulated AWS meanwhile, so what they created is
#: known without asking again. Removed when seeding ends; a seeder called outside it asks.
SEEDING = "seeding"


def seeding_memo(ctx: SeedContext, name: str) -> dict[Any, Any] | None:
    """The memo ``name`` of the seeding in progress, or None outside one."""
    seeding: dict[str, dict[Any, Any]] | None = ctx.seed_state.get(SEEDING)
    return None if seeding is None else seeding.setdefault(name, {})


#: Creates, in the emulated AWS, what one step restores from. Idempotent: seeding runs once per
#: mode, and several steps may name the same source.
Seeder = Callable[[SeedContext], None]
