"""``drplan init``: the template, the shipped examples, and ``--from-aws`` drafts of a tagged estate.

The estate is built in moto (``mock_aws``, in-process) as a person's account would look: tagged and
untagged resources of every kind drplan drafts, a kind it cannot restore, an unversioned bucket, a
drill leftover. The draft must pass drplan's own validation, name exactly the tagged resources, and
drill in the sandbox. AWS Backup recovery points, which moto lacks, come from the sandbox's
emulator of AWS Backup (the same one drills use)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import click
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from drplan.cli import cli, main
from drplan.scaffold import check, examples
from tests.conftest import ROOT

SHOP = [{"Key": "app", "Value": "shop"}]
OTHER = [{"Key": "app", "Value": "other"}]
REGION = "us-east-1"


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def _drplan(args: tuple[str, ...]) -> None:
    main(list(args))  # drplan's entry point: its errors become the documented exit codes


def init(*args: str) -> Result:
    return CliRunner().invoke(_drplan, ["init", *args])


def validate(path: Path) -> Result:
    return CliRunner().invoke(cli, ["validate", str(path)])


# --- the template ------------------------------------------------------------------------------


def test_the_template_validates_and_says_what_to_replace(tmp_path: Path) -> None:
    target = tmp_path / "plans" / "orders.json"  # the folder is created
    result = init("-o", str(target), "--region", "eu-west-1")
    assert result.exit_code == 0, result.output
    assert "validated: 0 errors, 0 warning(s)" in result.stderr
    assert result.stderr.count("TODO ") >= 4 and "replace what says TODO" in result.stderr
    document = json.loads(target.read_text())
    assert document["name"] == "orders" and document["aws"]["region"] == "eu-west-1"
    assert "TODO" in document["description"] and "todo" in json.dumps(document["services"]).lower()
    done = validate(target)
    assert done.exit_code == 0 and "0 errors, 0 warnings" in done.output


def test_the_template_goes_to_standard_output_without_o() -> None:
    result = init("--name", "ledger")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["name"] == "ledger"
    assert not check(result.stdout.encode(), "<stdout>").errors


def test_o_refuses_to_overwrite_an_existing_file_unless_force(tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    target.write_text("my own plan, not to be lost\n")
    refused = init("-o", str(target))
    assert refused.exit_code == 2
    assert f"{target} exists: pass --force to replace it" in refused.stderr
    assert target.read_text() == "my own plan, not to be lost\n"
    replaced = init("-o", str(target), "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert validate(target).exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "Not A Name"], "a plan name is lowercase"),
        (["--region", "us-moon-1"], "not an AWS region"),
        (["--tag", "app=shop"], "add --from-aws"),
        (["--from-aws"], "needs at least one --tag"),
        (["--from-aws", "--tag", "=shop"], "write KEY=VALUE"),
        (["--example", "webshop", "--name", "x"], "leave out --from-aws, --tag and --name"),
        (["--example", "no-such-plan"], "not a shipped example"),
        (["--profile", "prod"], "only apply with --from-aws"),
    ],
)
def test_usage_errors_exit_2_with_what_is_wrong(args: list[str], message: str) -> None:
    result = init(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("name", examples())
def test_each_shipped_example_is_written_as_it_is(tmp_path: Path, name: str) -> None:
    assert len(examples()) >= 4
    target = tmp_path / "plans" / f"{name}.json"
    result = init("--example", name, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == (ROOT / "plans" / f"{name}.json").read_bytes()
    assert validate(target).exit_code == 0


# --- --from-aws against moto -----------------------------------------------------------------------


def build_estate() -> dict[str, str]:
    """A shop's account: what carries app=shop, what does not, and what cannot be drafted. Returns
    the ids AWS chose (volumes, zones)."""
    rds = boto3.client("rds", region_name=REGION)
    for ident, tags in (("shop-orders", SHOP), ("other-db", OTHER)):
        rds.create_db_instance(
            DBInstanceIdentifier=ident,
            DBInstanceClass="db.r6g.large",
            Engine="postgres",
            AllocatedStorage=100,
            MasterUsername="admin",
            MasterUserPassword="not-a-real-password",
            BackupRetentionPeriod=7,
            Tags=tags,
        )
        rds.create_db_snapshot(DBSnapshotIdentifier=f"{ident}-nightly", DBInstanceIdentifier=ident)
    rds.create_db_cluster(
        DBClusterIdentifier="shop-analytics",
        Engine="aurora-postgresql",
        MasterUsername="admin",
        MasterUserPassword="not-a-real-password",
        Tags=SHOP,
    )
    rds.create_db_instance(
        DBInstanceIdentifier="shop-analytics-1",
        DBClusterIdentifier="shop-analytics",
        DBInstanceClass="db.r6g.xlarge",
        Engine="aurora-postgresql",
        Tags=SHOP,
    )
    rds.create_db_cluster_snapshot(
        DBClusterSnapshotIdentifier="shop-analytics-nightly", DBClusterIdentifier="shop-analytics"
    )

    ddb = boto3.client("dynamodb", region_name=REGION)

    def table(name: str, tags: list[dict[str, str]]) -> None:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=tags,
        )

    table("shop-carts", SHOP)
    ddb.update_continuous_backups(
        TableName="shop-carts", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    table("shop-sessions", SHOP)
    ddb.create_backup(TableName="shop-sessions", BackupName="sessions-nightly")
    table("other-table", OTHER)
    # A drill copy left behind: it carries the tags it was restored with, and drplan's own.
    table("shop-carts-restored-drill-abcd1234", [*SHOP, {"Key": "drplan:run-id", "Value": "abcd1234"}])

    ec2 = boto3.client("ec2", region_name=REGION)
    media = ec2.create_volume(
        AvailabilityZone="us-east-1b",
        Size=50,
        VolumeType="gp3",
        TagSpecifications=[
            {"ResourceType": "volume", "Tags": [*SHOP, {"Key": "Name", "Value": "shop-media"}]}
        ],
    )["VolumeId"]
    ec2.create_snapshot(
        VolumeId=media,
        TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [*SHOP, {"Key": "volume", "Value": "media"}]}
        ],
    )
    other_volume = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=10, TagSpecifications=[{"ResourceType": "volume", "Tags": OTHER}]
    )["VolumeId"]
    ec2.create_snapshot(VolumeId=other_volume)

    s3 = boto3.client("s3", region_name=REGION)
    for bucket, tags, versioned in (
        ("shop-assets-example", SHOP, True),
        ("shop-logs-example", SHOP, False),
        ("other-assets-example", OTHER, True),
    ):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
        if versioned:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    r53 = boto3.client("route53")
    zones = {}
    for zone, tags in (("shop.example.com", SHOP), ("other.example.com", OTHER)):
        zid = r53.create_hosted_zone(Name=zone, CallerReference=zone)["HostedZone"]["Id"].rsplit("/", 1)[-1]
        r53.change_tags_for_resource(ResourceType="hostedzone", ResourceId=zid, AddTags=tags)
        zones[zone] = zid

    ec2.create_launch_template(
        LaunchTemplateName="shop-web",
        LaunchTemplateData={"ImageId": "ami-12345678", "InstanceType": "t3.micro"},
    )
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    for group, tags, desired in (("shop-web", SHOP, 3), ("other-web", OTHER, 1)):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=group,
            LaunchTemplate={"LaunchTemplateName": "shop-web"},
            MinSize=1,
            MaxSize=6,
            DesiredCapacity=desired,
            AvailabilityZones=["us-east-1a"],
            Tags=[{**t, "PropagateAtLaunch": False} for t in tags],
        )
    boto3.client("backup", region_name=REGION).create_backup_vault(
        BackupVaultName="shop-vault", BackupVaultTags={"app": "shop"}
    )
    boto3.client("sqs", region_name=REGION).create_queue(QueueName="shop-jobs", tags={"app": "shop"})
    return {
        "media": media,
        "other_volume": other_volume,
        "shop_zone": zones["shop.example.com"],
        "other_zone": zones["other.example.com"],
    }


@pytest.fixture
def estate() -> Iterator[dict[str, str]]:
    with mock_aws():
        yield build_estate()


def named_resources(document: dict[str, Any]) -> set[str]:
    """Every existing resource the draft's steps read or change, by the parameter that names it."""
    names = set()
    for service in document["services"].values():
        for step in service["steps"]:
            params = step["with"]
            for key in (
                "source_instance",
                "source_cluster",
                "source_table",
                "bucket",
                "group",
                "zone_id",
                "vault",
                "resource_arn",
            ):
                if key in params:
                    names.add(str(params[key]))
    return names


def test_from_aws_drafts_exactly_the_tagged_resources_and_the_draft_validates(
    tmp_path: Path, estate: dict[str, str]
) -> None:
    target = tmp_path / "plans" / "shop.json"
    result = init("--from-aws", "--tag", "app=shop", "--region", REGION, "-o", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text()
    document = json.loads(text)

    # drplan's own validation, as a person would run it, and in-process.
    done = validate(target)
    assert done.exit_code == 0, done.output
    assert not check(target.read_bytes(), str(target)).errors

    services = document["services"]
    assert named_resources(document) == {
        "shop-orders",
        "shop-analytics",
        "shop-carts",
        "shop-sessions",
        "shop-assets-example",
        "shop-web",
        estate["shop_zone"],
    }
    for untagged in ("other-db", "other-table", "other-assets-example", "other-web", "other.example.com",
                     estate["other_volume"], estate["other_zone"], "shop-logs-example", "shop-jobs",
                     "shop-carts-restored-drill", "shop-analytics-1"):  # fmt: skip
        assert untagged not in text, untagged

    # One service per resource, each with the action its backups allow.
    steps = {sid: s["steps"][0] for sid, s in services.items()}
    assert steps["shop-orders"]["uses"] == "aws.rds.restore_snapshot"
    assert steps["shop-orders"]["with"]["instance_class"] == "db.r6g.large"
    assert steps["shop-analytics"]["uses"] == "aws.rds.restore_cluster_snapshot"
    assert steps["shop-analytics"]["with"]["instance_class"] == "db.r6g.xlarge"
    assert services["shop-orders"]["steps"][1]["uses"] == "check.tcp"
    assert steps["shop-carts"]["uses"] == "aws.dynamodb.restore_point_in_time"  # PITR is on
    assert steps["shop-sessions"]["uses"] == "aws.dynamodb.restore_backup"  # PITR off, a backup
    media = steps["shop-media"]
    assert media["uses"] == "aws.ec2.volume_from_snapshot"
    assert media["with"]["snapshot_tags"] == {"app": "shop", "volume": "media"}
    assert (
        media["with"]["availability_zone"] == "us-east-1b"
        and estate["media"] in services["shop-media"]["description"]
    )
    assert steps["shop-assets-example"]["uses"] == "aws.s3.restore_versions"
    assert steps["shop-web"]["with"] == {"group": "shop-web", "desired": 3, "min": 1, "max": 6}
    assert steps["dns-shop-example-com"]["uses"] == "aws.route53.change_record"
    assert document["aws"] == {"region": REGION, "account_id": "123456789012"}

    # Estimates, and where they came from; TODOs where a person decides.
    assert all("estimate" in step for s in services.values() for step in s["steps"])
    assert (
        "Estimate 30m: drplan's typical duration for aws.rds.restore_snapshot"
        in services["shop-orders"]["description"]
    )
    assert "TODO" in document["description"] and "TODO" in services["dns-shop-example-com"]["description"]
    assert not [
        sid for sid, s in services.items() if "depends_on" in s
    ]  # the order is for a person to decide
    err = result.stderr
    assert "TODO `depends_on`" in err and "TODO zone shop.example.com: the DNS cut-over" in err
    assert "TODO objectives" in err

    # What was left out, and why.
    assert "S3 bucket shop-logs-example: it is not versioned" in err
    assert re.search(r"arn:aws:sqs:us-east-1:\d+:shop-jobs: drplan has no action", err)
    assert "shop-carts-restored-drill-abcd1234: created by drplan (run abcd1234)" in err
    assert "DB instance shop-analytics-1: an instance of cluster shop-analytics" in err


def test_from_aws_with_nothing_tagged_writes_nothing_and_exits_1(
    tmp_path: Path, estate: dict[str, str]
) -> None:
    target = tmp_path / "none.json"
    result = init("--from-aws", "--tag", "app=nobody", "--region", REGION, "-o", str(target))
    assert result.exit_code == 1, result.output
    assert "nothing to draft" in result.stderr and not target.exists()


def test_from_aws_honours_every_tag_and_a_key_alone(estate: dict[str, str]) -> None:
    boto3.client("dynamodb", region_name=REGION).tag_resource(
        ResourceArn="arn:aws:dynamodb:us-east-1:123456789012:table/shop-carts",
        Tags=[{"Key": "tier", "Value": "1"}],
    )
    result = init("--from-aws", "--tag", "app=shop", "--tag", "tier", "--region", REGION)
    assert result.exit_code == 0, result.output
    assert named_resources(json.loads(result.stdout)) == {"shop-carts"}


@pytest.mark.slow
def test_the_draft_drills_in_the_sandbox(tmp_path: Path, estate: dict[str, str]) -> None:
    import subprocess
    import sys

    target = tmp_path / "shop.json"
    assert init("--from-aws", "--tag", "app=shop", "--region", REGION, "-o", str(target)).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-m", "drplan", "drill", str(target), "--sandbox"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("PASSED: drill ")


# --- AWS Backup recovery points (the sandbox's emulator: moto has none) ---------------------------


@pytest.mark.slow
def test_from_aws_drafts_restores_from_aws_backup_recovery_points(tmp_path: Path) -> None:
    from drplan.pipeline import load_plan
    from drplan.sandbox import start_sandbox

    plan, _ = load_plan(ROOT / "plans" / "status-page.json")  # any plan: only the emulator is used
    with start_sandbox(plan) as box:

        def client(name: str) -> Any:
            return boto3.client(name, region_name=REGION, endpoint_url=box.endpoint_url)

        ddb = client("dynamodb")
        ddb.create_table(
            TableName="shop-ledger",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=SHOP,
        )
        ledger = ddb.describe_table(TableName="shop-ledger")["Table"]["TableArn"]
        client("backup").create_backup_vault(BackupVaultName="shop-vault", BackupVaultTags={"app": "shop"})
        box.backup.seed(
            region=REGION,
            vault="shop-vault",
            resource_arn=ledger,
            resource_type="DynamoDB",
            age=timedelta(hours=3),
        )
        # A table that is gone: its recovery points carry its tags (AWS Backup copies them).
        archive = "arn:aws:dynamodb:us-east-1:123456789012:table/shop-archive"
        point = box.backup.seed(
            region=REGION,
            vault="shop-vault",
            resource_arn=archive,
            resource_type="DynamoDB",
            age=timedelta(hours=5),
        )
        client("backup").tag_resource(ResourceArn=point.arn, Tags={"app": "shop"})
        # Another system's backups in the same vault: not drafted.
        foreign = "arn:aws:dynamodb:us-east-1:123456789012:table/billing-invoices"
        box.backup.seed(
            region=REGION,
            vault="shop-vault",
            resource_arn=foreign,
            resource_type="DynamoDB",
            age=timedelta(hours=1),
        )

        target = tmp_path / "shop.json"
        result = init(
            "--from-aws",
            "--tag",
            "app=shop",
            "--region",
            REGION,
            "--endpoint-url",
            box.endpoint_url,
            "-o",
            str(target),
        )
    assert result.exit_code == 0, result.output
    assert validate(target).exit_code == 0
    document = json.loads(target.read_text())
    steps = {sid: s["steps"][0] for sid, s in document["services"].items()}
    assert set(steps) == {"shop-ledger", "shop-archive"}
    for sid, arn in (("shop-ledger", ledger), ("shop-archive", archive)):
        assert steps[sid]["uses"] == "aws.backup.restore"
        assert steps[sid]["with"]["resource_arn"] == arn and steps[sid]["with"]["vault"] == "shop-vault"
        assert steps[sid]["with"]["resource_type"] == "DynamoDB"
        assert steps[sid]["with"]["iam_role_arn"].endswith(":role/service-role/AWSBackupDefaultServiceRole")
    assert "billing-invoices" not in target.read_text()
    assert (
        "backup vault shop-vault: recovery points of 1 resource(s) that do not carry the tags"
        in result.stderr
    )


# --- drafting edge cases (no AWS: what discovery could return) ---------------------------------------


def test_drafts_of_awkward_estates_still_validate_and_say_what_is_missing() -> None:
    from datetime import datetime, timezone

    from drplan.scaffold import draft_estate, render
    from drplan.scaffold.discover import (
        Backup,
        Bucket,
        DbCluster,
        DbInstance,
        Estate,
        Table,
        TagFilter,
        Volume,
    )

    now = datetime.now(timezone.utc)
    long = "a" * 60
    estate = Estate("eu-west-1", "123456789012", (TagFilter("app", "shop"),))
    estate.found = [
        # No snapshot and no automated backups: drafted, with a TODO, never silently dropped.
        DbInstance(
            "ledger",
            "arn:aws:rds:eu-west-1:123456789012:db:ledger",
            "postgres",
            "db.t4g.micro",
            20,
            None,
            (),
            False,
            None,
        ),
        # Automated backups only: restored to a point in time.
        DbInstance(
            "orders",
            "arn:aws:rds:eu-west-1:123456789012:db:orders",
            "mysql",
            "db.m6g.large",
            50,
            "private",
            ("sg-0123456789abcdef0", "not-a-group"),
            True,
            None,
        ),
        # Aurora Serverless v2: db.serverless is no class the action takes.
        DbCluster(
            "analytics",
            "arn:aws:rds:eu-west-1:123456789012:cluster:analytics",
            "aurora-mysql",
            "db.serverless",
            2,
            None,
            (),
            Backup("analytics-snap", now),
        ),
        Table(
            long,
            f"arn:aws:dynamodb:eu-west-1:123456789012:table/{long}",
            False,
            "PROVISIONED",
            3 * 2**30,
            None,
        ),
        # Snapshots without tags that pick them alone: pinned, with a TODO.
        Volume(
            "vol-0123456789abcdef0",
            "arn:aws:ec2:eu-west-1:123456789012:volume/vol-0123456789abcdef0",
            None,
            "eu-west-1c",
            "io2",
            100,
            4000,
            None,
            "i-0123456789abcdef0 as /dev/xvdf",
            Backup("snap-0123456789abcdef0", now),
            None,
        ),
        # The same name as the table above, in another region.
        Bucket(long, f"arn:aws:s3:::{long}", "us-west-2"),
    ]
    draft = draft_estate(estate)
    data = render(draft)
    result = check(data, "<draft>")
    assert not result.errors, [d.message for d in result.errors]
    services = draft.document["services"]
    assert len(services) == 6 and len(set(services)) == 6  # ids unique although two names clash
    steps = {sid: s["steps"][0] for sid, s in services.items()}
    assert steps["ledger"]["uses"] == "aws.rds.restore_snapshot"
    assert any("ledger has no snapshot and no automated backups" in t for t in draft.todos)
    assert steps["orders"]["uses"] == "aws.rds.restore_point_in_time"
    assert steps["orders"]["with"]["security_groups"] == ["sg-0123456789abcdef0"]
    assert steps["analytics"]["with"]["instance_class"] == "db.r6g.large"
    assert any("db.serverless" in t for t in draft.todos)
    volume = next(s for s in steps.values() if s["uses"] == "aws.ec2.volume_from_snapshot")
    assert volume["with"]["snapshot"] == "snap-0123456789abcdef0" and volume["with"]["iops"] == 4000
    table = next(s for s in steps.values() if s["uses"] == "aws.dynamodb.restore_point_in_time")
    assert len(table["with"]["target"]) <= 63 and table["with"]["target"].endswith("-restored")
    assert any("neither point-in-time recovery nor a backup" in t for t in draft.todos)
    bucket = next(s for s in steps.values() if s["uses"] == "aws.s3.restore_versions")
    assert bucket["region"] == "us-west-2"


def test_a_draft_whose_estimates_exceed_the_placeholder_rto_raises_it_and_validates() -> None:
    from drplan.scaffold import draft_estate, render
    from drplan.scaffold.discover import DbInstance, Estate, TagFilter

    estate = Estate("us-east-1", None, (TagFilter("app", None),))
    # More restores than the run starts at once: the predicted RTO is several rounds of 30 minutes.
    estate.found = [
        DbInstance(
            f"db{i:03d}",
            f"arn:aws:rds:us-east-1:123456789012:db:db{i:03d}",
            "postgres",
            "db.t4g.micro",
            20,
            None,
            (),
            True,
            None,
        )
        for i in range(200)
    ]
    draft = draft_estate(estate)
    assert not check(render(draft), "<draft>").errors
    assert draft.document["objectives"]["rto"] != "PT4H"
    assert "rounded up" in draft.todos[0]
    assert "account_id" not in draft.document["aws"] and draft.document["name"] == "draft"
