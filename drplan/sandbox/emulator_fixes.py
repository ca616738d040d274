"""SANDBOX ONLY, moto internals: where moto's emulation differs from AWS in a way a run notices.

The sandbox runs moto in this process, so it can correct moto's behaviour where a step's wait
depends on AWS's answer and moto answers otherwise (tests that run actions against moto in-process
apply the same corrections). Each fix is small, says what AWS does, and leaves moto alone when the
code it corrects has changed shape; against real AWS none of this is used.

Configuration the sandbox needs from moto (Lambda without Docker) is set through moto's own API
instead: see :func:`drplan.sandbox.start_sandbox`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

_FIXED = "_drplan_fixed"


def apply(uses: Collection[str] | None = None) -> None:
    """Apply the fixes the actions in ``uses`` need (every fix when None); idempotent, and nothing
    happens without moto. A fix imports the moto models it corrects, and some cost a lot to import
    (moto's RDS models pull in EC2's: most of a second), so a plan that does not need one does not
    pay for it."""
    for action, fix in FIXES:
        if uses is None or action in uses:
            fix()


def fix_promote_read_replica() -> bool:
    """PromoteReadReplica: AWS makes the replica a standalone instance, so it no longer names a
    source (``ReadReplicaSourceDBInstanceIdentifier``) and its source no longer lists it as a
    replica. moto 5.x keeps both, so a step waiting for the promotion to finish would never see it
    finish. True when the fix is in place."""
    try:
        from moto.rds.models import RDSBackend
    except ImportError:
        return False
    original = RDSBackend.promote_read_replica
    if getattr(original, _FIXED, False):
        return True

    def promote_read_replica(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = self.databases.get(db_kwargs.get("db_instance_identifier"))
        source = (
            database.source_db_instance_identifier if database is not None and database.is_replica else None
        )
        promoted = original(self, db_kwargs)
        if source:
            try:
                primary = self.find_db_from_id(source)
            except Exception:  # the source is gone: nothing lists the replica any more
                primary = None
            if primary is not None:
                for reference in (promoted.db_instance_identifier, promoted.db_instance_arn):
                    if reference in primary.replicas:
                        primary.replicas.remove(reference)
            promoted.source_db_instance_identifier = None
        return promoted

    setattr(promote_read_replica, _FIXED, True)
    RDSBackend.promote_read_replica = promote_read_replica  # type: ignore[method-assign]
    return True


def fix_lambda_invoke_events() -> bool:
    """Invoke: the request's body is the function's event, any JSON value. moto 5.x also reads it as
    the call's own parameters, and answers 500 when the event is not an object (a list, a string,
    null). Such a body holds no parameters. True when the fix is in place."""
    try:
        from moto.awslambda.responses import LambdaResponse
    except ImportError:
        return False
    original = LambdaResponse._get_param
    if getattr(original, _FIXED, False):
        return True

    def _get_param(self: Any, param_name: str, if_none: Any = None) -> Any:
        try:
            return original(self, param_name, if_none)
        except TypeError:  # json.loads(body)[name] on a list, a string or null
            return if_none

    setattr(_get_param, _FIXED, True)
    LambdaResponse._get_param = _get_param  # type: ignore[method-assign]
    return True


def fix_ec2_snapshot_owners() -> bool:
    """DescribeSnapshots: AWS answers ``OwnerIds=["self"]`` (or account ids) with the snapshots
    those accounts own, and nothing else. moto 5.x ignores ``OwnerIds`` and answers every snapshot it
    holds, the ~1,200 of its public images included (owned by Amazon's accounts), testing each
    against the tag filters by scanning every tag in the Region: a step picking its snapshot by tags
    saw snapshots AWS would not show, and cost ~80 ms of emulator CPU per call. The owner filter
    now comes first, so only the owners' snapshots are matched against the tags. Left to moto when
    ``OwnerIds`` names an alias (``amazon``) or an ``owner-id`` filter is given. True when the fix
    is in place."""
    try:
        from moto.core.responses import ActionResult
        from moto.ec2.responses.elastic_block_store import ElasticBlockStore
    except ImportError:
        return False
    original = ElasticBlockStore.describe_snapshots
    if getattr(original, _FIXED, False):
        return True

    def describe_snapshots(self: Any) -> Any:
        owners = self._get_param("OwnerIds", []) or []
        filters = self._filters_from_querystring()
        if not owners or "owner-id" in filters or not all(o == "self" or o.isdigit() for o in owners):
            return original(self)
        accounts = sorted({self.current_account if o == "self" else o for o in owners})
        snapshots = self.ec2_backend.describe_snapshots(
            snapshot_ids=self._get_param("SnapshotIds", []), filters={"owner-id": accounts, **filters}
        )
        return ActionResult({"Snapshots": snapshots})

    setattr(describe_snapshots, _FIXED, True)
    ElasticBlockStore.describe_snapshots = describe_snapshots  # type: ignore[method-assign]
    return True


#: Which action needs which fix.
FIXES: tuple[tuple[str, Callable[[], bool]], ...] = (
    ("aws.rds.promote_read_replica", fix_promote_read_replica),
    ("aws.lambda.invoke", fix_lambda_invoke_events),
    ("aws.ec2.volume_from_snapshot", fix_ec2_snapshot_owners),
)
