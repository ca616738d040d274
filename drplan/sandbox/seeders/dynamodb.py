"""Seeders of the DynamoDB actions: the source table with items, and its backup or its
point-in-time recovery."""

from __future__ import annotations

from drplan.actions.dynamodb.restore import describe_table
from drplan.sandbox.seeders.context import SeedContext

#: Items put in a seeded table.
ITEMS = 25
#: Items written per BatchWriteItem call (DynamoDB's maximum).
BATCH = 25


def seed_table(ctx: SeedContext, name: str) -> None:
    if describe_table(ctx, name) is not None:
        return
    client = ctx.client("dynamodb")
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    items = [{"pk": {"S": f"item-{i:03d}"}, "value": {"N": str(i)}} for i in range(ITEMS)]
    for start in range(0, len(items), BATCH):  # the same items, BATCH to a call instead of one each
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH]]
        for _ in range(5):
            if not pending:
                break
            answer = client.batch_write_item(RequestItems={name: pending})
            pending = answer.get("UnprocessedItems", {}).get(name, [])
        if pending:
            raise RuntimeError(f"DynamoDB left {len(pending)} seed item(s) of {name} unwritten")


def seed_backup(ctx: SeedContext) -> None:
    """``aws.dynamodb.restore_backup``: the source table and an on-demand backup of it."""
    source = ctx.params.get("source_table")
    if not source:
        return
    seed_table(ctx, source)
    client = ctx.client("dynamodb")
    if not client.list_backups(TableName=source).get("BackupSummaries"):
        client.create_backup(TableName=source, BackupName=f"{source}-nightly")


def seed_point_in_time(ctx: SeedContext) -> None:
    """``aws.dynamodb.restore_point_in_time``: the source table, with point-in-time recovery on."""
    source = ctx.params["source_table"]
    seed_table(ctx, source)
    ctx.client("dynamodb").update_continuous_backups(
        TableName=source, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
