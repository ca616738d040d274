"""aws.dynamodb.*: restores against moto, state checked in DynamoDB afterwards."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.runs import one_step, run_plan


@pytest.fixture
def ddb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(7):
            client.put_item(TableName="orders", Item={"pk": {"S": f"o{i}"}})
        yield client


def test_restore_latest_backup_brings_the_items_back(ddb):
    ddb.create_backup(TableName="orders", BackupName="older")
    ddb.put_item(TableName="orders", Item={"pk": {"S": "o7"}})
    newest = ddb.create_backup(TableName="orders", BackupName="newest")["BackupDetails"]["BackupArn"]

    run = run_plan(
        one_step("aws.dynamodb.restore_backup", {"source_table": "orders", "target": "orders-restored"})
    )

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert rec.outputs["backup_arn"] == newest
    assert rec.outputs["table_name"] == "orders-restored"
    assert ddb.scan(TableName="orders-restored")["Count"] == 8  # the newest backup has o7
    tags = ddb.list_tags_of_resource(ResourceArn=rec.outputs["table_arn"])["Tags"]
    assert {"Key": "drplan:run-id", "Value": "t35t1d"} in tags
    assert rec.handle["recovery_point"]["id"] == newest


def test_restore_fails_cleanly_without_backups(ddb):
    run = run_plan(
        one_step("aws.dynamodb.restore_backup", {"source_table": "orders", "target": "orders-restored"})
    )
    assert run.record().status == "failed"
    assert "has no available backups" in run.record().error
    assert "orders-restored" not in ddb.list_tables()["TableNames"]


def test_refuses_to_overwrite_an_existing_table(ddb):
    ddb.create_backup(TableName="orders", BackupName="b1x")
    run = run_plan(one_step("aws.dynamodb.restore_backup", {"source_table": "orders", "target": "orders"}))
    assert run.record().status == "failed"
    assert "already exists" in run.record().error
    assert ddb.scan(TableName="orders")["Count"] == 7  # untouched


def test_point_in_time_restore_and_undo(ddb):
    ddb.update_continuous_backups(
        TableName="orders", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    run = run_plan(
        one_step("aws.dynamodb.restore_point_in_time", {"source_table": "orders", "target": "orders-pitr"})
    )
    assert run.record().status == "succeeded", run.record().error
    assert ddb.scan(TableName="orders-pitr")["Count"] == 7

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert "orders-pitr" not in ddb.list_tables()["TableNames"]
    assert "orders" in ddb.list_tables()["TableNames"]


def test_point_in_time_needs_pitr_enabled(ddb):
    run = run_plan(
        one_step("aws.dynamodb.restore_point_in_time", {"source_table": "orders", "target": "orders-pitr"})
    )
    assert run.record().status == "failed"
    assert "point-in-time recovery is not enabled" in run.record().error
