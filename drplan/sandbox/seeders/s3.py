"""The seeder of ``aws.s3.restore_versions``: a versioned bucket with versions before and after
``at``, backdated in moto's backend when the emulator runs in this process."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from drplan.actions._aws import as_utc
from drplan.actions.s3.versions import point_in_time, versioning
from drplan.durations import parse_duration
from drplan.sandbox.seeders.context import SeedContext


def seed_bucket(ctx: SeedContext) -> None:
    """A versioned bucket whose keys under ``prefix`` have versions before and after ``at``.

    Written in two phases, old then new (:data:`SEED_OLD`, :data:`SEED_NEW`): three keys changed
    after ``at`` (one of them deleted), one unchanged, one created after it; so a restore at
    ``at`` restores 3, deletes 1 and leaves 1 unchanged. Idempotent: a bucket that already has
    versions under the prefix is left alone.

    S3 stamps ``LastModified`` itself and the emulator uses the real clock, so every seeded
    version is seconds old, and a plan with ``at: PT1H`` would find that no key existed an hour
    ago and delete them all. The API cannot backdate an object, so when the emulator runs in
    this process the seed moves the times in moto's backend (see :func:`backdate_in_moto`);
    elsewhere the versions keep their real times.
    """
    client = ctx.client("s3")
    bucket, prefix = str(ctx.params["bucket"]), str(ctx.params.get("prefix", ""))
    if "${" in bucket:
        return  # an earlier step's output: that step makes it
    status = versioning(ctx, bucket)
    if status == "forbidden":
        return
    if status is None:
        config = (
            {}
            if ctx.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}
        )
        client.create_bucket(Bucket=bucket, **config)
    else:
        page = client.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        if page.get("Versions") or page.get("DeleteMarkers"):
            return
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    written: dict[str, list[tuple[str, str]]] = {"old": [], "new": []}
    for phase, writes in (("old", SEED_OLD), ("new", SEED_NEW)):
        for name, label in writes:
            key = prefix + name
            if label is None:
                response = client.delete_object(Bucket=bucket, Key=key)
            else:
                body = f"# {name} ({label})\nid,amount\n" + "".join(
                    f"{i},{i * 10 + len(label)}\n" for i in range(5)
                )
                response = client.put_object(Bucket=bucket, Key=key, Body=body.encode())
            written[phase].append((key, response["VersionId"]))
    now = datetime.now(timezone.utc)
    value = str(ctx.params["at"])
    at = now - parse_duration(value) if value.startswith("P") else point_in_time(ctx)
    if at < now:
        # Old versions an hour before `at`, new ones up to a minute before now: for `at: PT1H`
        # they stay on the right side of `at` if the run starts within 59 minutes of the seed.
        new_base = now - min((now - at) / 2, timedelta(seconds=60))
        stamps = [
            (k, v, at - timedelta(hours=1) + timedelta(seconds=i)) for i, (k, v) in enumerate(written["old"])
        ]
        stamps += [
            (k, v, new_base + timedelta(milliseconds=10 * i)) for i, (k, v) in enumerate(written["new"])
        ]
        backdate_in_moto(bucket, stamps)


#: The sandbox's source data: (key under the prefix, version label or None for a delete).
SEED_OLD: tuple[tuple[str, str | None], ...] = (
    ("orders/2024-01.csv", "v1"),
    ("orders/2024-01.csv", "v2"),
    ("orders/2024-02.csv", "v1"),
    ("customers.json", "v1"),
    ("customers.json", "v2"),
    ("config/settings.json", "v1"),
)
SEED_NEW: tuple[tuple[str, str | None], ...] = (
    ("orders/2024-01.csv", "v3-corrupted"),
    ("orders/2024-02.csv", "v2-corrupted"),
    ("config/settings.json", None),
    ("reports/created-later.csv", "v1"),
)


def backdate_in_moto(bucket: str, stamps: list[tuple[str, str, datetime]]) -> bool:
    """SANDBOX ONLY, moto internals: set ``LastModified`` of seeded versions in moto's S3 backend.

    There is no S3 API to set an object's time, and a point-in-time restore needs versions older
    than ``at``. This reaches into moto (5.x: ``s3_backends.bucket_accounts``, ``FakeBucket.keys``,
    ``last_modified`` as naive UTC) and does nothing unless this process hosts the emulator and the
    bucket is in it: against real AWS, or a moto server in another process, it returns False.
    """
    try:
        from moto.s3.models import s3_backends
    except ImportError:
        return False
    owner = s3_backends.bucket_accounts.get(bucket)
    if owner is None:
        return False
    partition, account = owner
    fake = s3_backends[account][partition].buckets.get(bucket)
    if fake is None:
        return False
    for key, version_id, when in stamps:
        for version in fake.keys.getlist(key, []):
            if version.version_id == version_id:
                version.last_modified = as_utc(when).replace(tzinfo=None)
    return True
