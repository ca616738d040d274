"""The ids the emulator chose for what seeding created, and the rewriting that hides them.

The plan says hosted zone ``Z0123456789ABC`` and instance ``i-0abc``; the emulator cannot create
either with a chosen id. So the seeders record plan id -> emulator id in ``seed_state`` (under
:data:`ZONE_IDS` and :data:`INSTANCE_IDS`), and every client of the sandbox's sessions rewrites the
plan's ids in requests and the emulator's ids in answers (:class:`EmulatedIds`): the run sees the
account the plan describes, and the actions know nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: ``seed_state[ZONE_IDS]``: plan hosted zone id -> the id the emulator gave the zone seeded.
ZONE_IDS = "route53_zone_ids"
#: ``seed_state[INSTANCE_IDS]``: plan instance id -> the id the emulator gave the instance seeded.
INSTANCE_IDS = "ec2_instance_ids"
#: Per service: the ``seed_state`` key of its mapping and the request parameters that hold such ids.
_ID_PARAMETERS = {
    "route53": (ZONE_IDS, ("HostedZoneId", "Id")),
    "ec2": (INSTANCE_IDS, ("InstanceId", "InstanceIds")),
}


def new_seed_state() -> dict[str, Any]:
    """An empty ``seed_state``: no id mapped yet."""
    return {ZONE_IDS: {}, INSTANCE_IDS: {}}


@dataclass
class EmulatedIds:
    """Rewrites the plan's ids to the emulator's in every call of a client (``customize``)."""

    seed_state: dict[str, Any]

    def customize(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        if service in _ID_PARAMETERS:
            client.meta.events.register(f"before-parameter-build.{service}", self._rewrite_ids)
            client.meta.events.register(f"after-call.{service}", self._rewrite_response)

    def _mapping(self, service: str) -> dict[str, str]:
        mapping: dict[str, str] = self.seed_state.setdefault(_ID_PARAMETERS[service][0], {})
        return mapping

    def _rewrite_ids(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        mapping = self._mapping(service)
        for name in _ID_PARAMETERS[service][1]:
            value = params.get(name)
            if isinstance(value, list):
                params[name] = [mapping.get(_bare_id(v), v) for v in value]
            elif isinstance(value, str) and _bare_id(value) in mapping:
                params[name] = mapping[_bare_id(value)]

    def _rewrite_response(self, parsed: Any, model: Any, **_: Any) -> None:
        reverse = {v: k for k, v in self._mapping(model.service_model.service_name).items()}
        if reverse:
            _replace_ids(parsed, reverse)


def _bare_id(value: str) -> str:
    return value.strip().removeprefix("/hostedzone/")


def _replace_ids(value: Any, reverse: dict[str, str]) -> Any:
    """Rewrite, in place, every string in a parsed response that is (or ends in) an emulator id."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _replace_ids(item, reverse)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _replace_ids(item, reverse)
    elif isinstance(value, str):
        bare = _bare_id(value)
        if bare in reverse:
            return value[: len(value) - len(bare)] + reverse[bare]
    return value
