"""The action catalogue: built-in actions plus those other packages register.

Built-in actions are grouped by AWS service, one package each (``drplan.actions.rds``,
``drplan.actions.s3``, ...), whose ``ACTIONS`` lists its classes; the actions that call no AWS
service are the modules ``checks`` and ``control``. Helpers all AWS actions share are in
``_aws``. docs/writing-actions.md walks through adding one.

Third-party packages add actions through the ``drplan.actions`` entry-point group, each entry
naming an :class:`~drplan.actions.base.Action` subclass::

    [project.entry-points."drplan.actions"]
    "acme.cache.flush" = "acme_drplan.actions:FlushCache"
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import EntryPoint

from drplan.actions.base import Action
from drplan.errors import UsageError

ENTRY_POINT_GROUP = "drplan.actions"

BUILTIN_MODULES = (
    "drplan.actions.backup",
    "drplan.actions.rds",
    "drplan.actions.dynamodb",
    "drplan.actions.ec2",
    "drplan.actions.s3",
    "drplan.actions.route53",
    "drplan.actions.arc",
    "drplan.actions.autoscaling",
    "drplan.actions.ecs",
    "drplan.actions.eks",
    "drplan.actions.awslambda",
    "drplan.actions.cloudwatch",
    "drplan.actions.checks",
    "drplan.actions.control",
)


@cache
def registry() -> dict[str, Action]:
    """Every known action by name: built-ins first, then entry points (which may not override)."""
    from drplan.schema import action_schemas

    actions: dict[str, Action] = {}
    schemas = action_schemas()
    for module_name in BUILTIN_MODULES:
        module = importlib.import_module(module_name)
        for cls in getattr(module, "ACTIONS", ()):
            if cls.params_schema is None:
                cls.params_schema = schemas.get(cls.name)
            actions[cls.name] = cls()
    for ep in _entry_points():
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must say which one it is
            raise UsageError(f"cannot load action {ep.name!r} from {ep.value}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Action)):
            raise UsageError(f"entry point {ep.name!r} ({ep.value}) is not a drplan Action class")
        if cls.name in actions:
            continue  # built-ins win: a plugin cannot change what a plan already means
        actions[cls.name] = cls()
    return dict(sorted(actions.items()))


def _entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))
