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


#: Creates, in the emulated AWS, what one step restores from. Idempotent: seeding runs once per
#: mode, and several steps may name the same source.
Seeder = Callable[[SeedContext], None]
