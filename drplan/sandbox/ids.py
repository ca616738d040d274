"""The ids the emulator chose for what seeding created, and the rewriting that hides them.

The plan says hosted zone ``Z0123456789ABC``, instance ``i-0abc`` and health check
``0e1f2a3b-...``; the emulator cannot create any of them with a chosen id. So the seeders record
plan id -> emulator id in ``seed_state`` (under :data:`ZONE_IDS`, :data:`INSTANCE_IDS` and
:data:`HEALTH_CHECK_IDS`), and every client of the sandbox's sessions rewrites the plan's ids in
requests and the emulator's ids in answers (:class:`EmulatedIds`): the run sees the account the
plan describes, and the actions know nothing of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: ``seed_state[ZONE_IDS]``: plan hosted zone id -> the id the emulator gave the zone seeded.
ZONE_IDS = "route53_zone_ids"
#: ``seed_state[INSTANCE_IDS]``: plan instance id -> the id the emulator gave the instance seeded.
INSTANCE_IDS = "ec2_instance_ids"
#: ``seed_state[HEALTH_CHECK_IDS]``: plan Route 53 health check id -> the id the emulator gave it.
HEALTH_CHECK_IDS = "route53_health_check_ids"
#: Per service: the ``seed_state`` key of each mapping and the request parameters that hold such ids.
_ID_PARAMETERS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "route53": ((ZONE_IDS, ("HostedZoneId", "Id")), (HEALTH_CHECK_IDS, ("HealthCheckId",))),
    "ec2": ((INSTANCE_IDS, ("InstanceId", "InstanceIds")),),
}


def new_seed_state() -> dict[str, Any]:
    """An empty ``seed_state``: no id mapped yet."""
    return {ZONE_IDS: {}, INSTANCE_IDS: {}, HEALTH_CHECK_IDS: {}}


@dataclass
class EmulatedIds:
    """Rewrites the plan's ids to the emulator's in every call of a client (``customize``)."""

    seed_state: dict[str, Any]

    def customize(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        if service in _ID_PARAMETERS:
            client.meta.events.register(f"before-parameter-build.{service}", self._rewrite_ids)
            client.meta.events.register(f"after-call.{service}", self._rewrite_response)

    def _mapping(self, key: str) -> dict[str, str]:
        mapping: dict[str, str] = self.seed_state.setdefault(key, {})
        return mapping

    def _rewrite_ids(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        for key, names in _ID_PARAMETERS[model.service_model.service_name]:
            mapping = self._mapping(key)
            for name in names:
                value = params.get(name)
                if isinstance(value, list):
                    params[name] = [mapping.get(_bare_id(v), v) for v in value]
                elif isinstance(value, str) and _bare_id(value) in mapping:
                    params[name] = mapping[_bare_id(value)]

    def _rewrite_response(self, parsed: Any, model: Any, **_: Any) -> None:
        reverse = {
            emulated: planned
            for key, _ in _ID_PARAMETERS[model.service_model.service_name]
            for planned, emulated in self._mapping(key).items()
        }
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
