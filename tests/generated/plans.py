"""Hypothesis strategies for *valid* plans, drawn over the plan model rather than the raw schema.

A plan is drawn in a topological order: services one after another, steps in order within each
service. ``depends_on``, ``after`` and ``${service.step.output}`` references only ever point at
what was drawn before, so the graph never has a cycle (DR207), yet any DAG can come out (the
services are written to the file in a shuffled order). What the semantic checks would refuse is
avoided by construction where that is cheap:

- names: every resource name is unique per plan (DR213) and follows AWS's rules with the drill
  suffix added (DR212); ids are unique within their scope (DR203);
- references name an output the producing action really has (DR204, DR205), of a kind that fits
  the parameter (a ``port`` gets a port, a ``source_table`` a table name; free text any output);
- a step that runs in recoveries never needs a drill-only step (DR309); ``max_age: rpo`` only
  where an RPO applies (DR308); ``command`` only with ``allow_commands`` (DR210);
- RTO objectives are drawn relative to the sum of the effective estimates (an upper bound of any
  predicted RTO), mostly above it; sometimes below, so some plans miss an objective (DR301/DR302):
  those are the plans ``plan`` must still show, with exit 1.

What is left to chance (and to ``drplan validate`` to judge) is kept on purpose: odd but legal
duration spellings, names at their length limits, unusual drill suffixes, text with characters
that Markdown, Mermaid and DOT treat specially.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

ACCOUNT = "123456789012"
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"

#: Every built-in action, with a weight (how often a step uses it).
ACTIONS: dict[str, int] = {
    "aws.rds.restore_snapshot": 4,
    "aws.rds.restore_point_in_time": 3,
    "aws.rds.restore_cluster_snapshot": 3,
    "aws.dynamodb.restore_backup": 3,
    "aws.dynamodb.restore_point_in_time": 3,
    "aws.ec2.volume_from_snapshot": 3,
    "aws.s3.restore_versions": 3,
    "aws.route53.change_record": 4,
    "aws.autoscaling.set_capacity": 3,
    "aws.backup.restore": 3,
    "check.http": 5,
    "check.tcp": 4,
    "wait": 2,
    "manual": 2,
    "command": 1,
    "aws.ecs.set_capacity": 2,
    "aws.eks.scale_nodegroup": 2,
    "aws.lambda.invoke": 2,
    "aws.rds.promote_read_replica": 2,
    "aws.rds.switchover_global_cluster": 2,
    "aws.rds.failover_global_cluster": 1,
    "check.cloudwatch_alarm": 2,
    "check.route53_health": 2,
    "aws.arc.set_routing_control": 2,
}

#: The kind of value each output holds, so that a reference lands where it fits.
OUTPUT_KINDS: dict[str, dict[str, str]] = {
    "aws.rds.restore_snapshot": {
        "endpoint": "host",
        "port": "port",
        "arn": "arn",
        "instance_id": "rds_instance",
        "snapshot_id": "rds_snapshot",
    },
    "aws.rds.restore_point_in_time": {
        "endpoint": "host",
        "port": "port",
        "arn": "arn",
        "instance_id": "rds_instance",
    },
    "aws.rds.restore_cluster_snapshot": {
        "endpoint": "host",
        "reader_endpoint": "host",
        "port": "port",
        "arn": "arn",
        "cluster_id": "rds_cluster",
        "snapshot_id": "cluster_snapshot",
    },
    "aws.dynamodb.restore_backup": {"table_name": "table", "table_arn": "arn", "backup_arn": "dynamo_backup"},
    "aws.dynamodb.restore_point_in_time": {"table_name": "table", "table_arn": "arn"},
    "aws.ec2.volume_from_snapshot": {
        "volume_id": "text",
        "size_gib": "count",
        "snapshot_id": "ebs_snapshot",
        "availability_zone": "az",
    },
    "aws.s3.restore_versions": {
        "bucket": "bucket",
        "prefix": "text",
        "restored": "count",
        "deleted": "count",
        "unchanged": "count",
    },
    "aws.route53.change_record": {"fqdn": "host", "change_id": "text"},
    "aws.autoscaling.set_capacity": {"group": "asg", "desired": "count"},
    "aws.backup.restore": {
        "resource_arn": "arn",
        "resource_id": "text",
        "recovery_point_arn": "recovery_point",
        "restore_job_id": "text",
        "name": "text",
        "endpoint": "host",
        "reader_endpoint": "host",
        "port": "port",
        "instance_id": "text",
        "private_ip": "text",
        "volume_id": "text",
        "file_system_id": "text",
        "dns_name": "text",
    },
    "check.http": {"status": "count", "url": "url"},
    "check.tcp": {"address": "text"},
    "command": {"exit_code": "count"},
    "manual": {"approved_by": "text"},
    "wait": {},
    "aws.ecs.set_capacity": {"cluster": "text", "service": "text", "desired": "count", "running": "count"},
    "aws.eks.scale_nodegroup": {"cluster": "text", "nodegroup": "text", "desired": "count"},
    "aws.lambda.invoke": {},  # its `outputs`
    "aws.rds.promote_read_replica": {
        "endpoint": "host",
        "port": "port",
        "arn": "arn",
        "instance_id": "rds_instance",
    },
    "aws.rds.switchover_global_cluster": {
        "endpoint": "host",
        "reader_endpoint": "host",
        "port": "port",
        "cluster_arn": "arn",
        "cluster_id": "rds_cluster",
        "previous_primary_arn": "arn",
        "global_endpoint": "host",
    },
    "aws.rds.failover_global_cluster": {
        **{
            "endpoint": "host",
            "reader_endpoint": "host",
            "port": "port",
            "cluster_arn": "arn",
            "cluster_id": "rds_cluster",
            "previous_primary_arn": "arn",
            "global_endpoint": "host",
        },
        "replication_lag_seconds": "seconds",
    },
    "check.cloudwatch_alarm": {"alarm": "text", "state": "text", "since": "text"},
    "check.route53_health": {
        "health_check_id": "health_check",
        "healthy_checkers": "count",
        "checkers": "count",
    },
    "aws.arc.set_routing_control": {"routing_control_arn": "routing_control", "state": "text"},
}

#: Hosts a drill's check may probe instead (`{run_id}` becomes the run id in `drill_with`).
DRILL_HOSTS = ["drill.example.com", "shop-{run_id}.drill.example.com"]
HEALTH_CHECK_ID = "0e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"

SERVICE_IDS = [
    "db",
    "orders-db",
    "carts",
    "web",
    "api",
    "files",
    "assets",
    "queue",
    "search_idx",
    "auth",
    "x",
    "9lives",
    "a-b_c",
    "s" + "v" * 61,  # 63 characters, the longest id
]
STEP_IDS = [
    "restore",
    "reachable",
    "healthy",
    "dns",
    "scale",
    "settle",
    "approve",
    "notify",
    "volume",
    "rewind",
    "up",
    "s1",
    "0",
    "step_with-long-name-" + "z" * 43,  # 63 characters
]
NAME_WORDS = ["orders", "shop-carts", "ledger", "media", "billing", "events", "x", "warehouse"]

#: Text for people (names, descriptions, instructions): plain, and what Markdown, Mermaid, DOT,
#: HTML and terminals treat specially. Never ``${`` (in parameters that would be a reference).
NASTY_TEXT = [
    "Restore orders DB",
    'say "hello"',
    "pipe | in a table",
    "`code` and *stars* and _under_",
    "<b>html</b> & &amp;",
    "back\\slash \\n",
    "line one\nline two",
    "tab\there",
    "[link](http://x) #hash",
    "{curly} (round) [square]",
    "--> arrow; end",
    "subgraph end click call",
    "é ü 日本 🚀",
    "%% mermaid comment",
    "100% $dollar",
    "   padded   ",
    "",
    "\u200b zero width",
    "a" * 300,
]


def text(*, allow_empty: bool = True) -> st.SearchStrategy[str]:
    base = st.sampled_from(NASTY_TEXT) | st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=15
    )
    strategy = base.filter(lambda s: "${" not in s)
    return strategy if allow_empty else strategy.filter(lambda s: s.strip() != "")


def iso_duration(seconds: float, style: int) -> str:
    """``seconds`` in one of several legal spellings (the value is the same)."""
    whole = int(seconds)
    frac = seconds - whole
    if frac or style == 1:
        return f"PT{f'{seconds:.9f}'.rstrip('0')}S" if frac else f"PT{whole}S"
    if style == 2 and whole % 60 == 0:
        return f"PT{whole // 60}M"  # PT90M, not normalised
    if style == 3 and whole and whole % 604800 == 0:
        return f"P{whole // 604800}W"
    if style == 4:
        return f"PT0{whole}S"  # a leading zero
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time = "".join(f"{v}{u}" for v, u in ((hours, "H"), (minutes, "M"), (secs, "S")) if v)
    out = "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")
    return out if out != "P" else "PT0S"


#: Estimates (seconds) a step may take: mostly from nothing to a day; rarely extreme.
ESTIMATES = [0, 1, 1.5, 10, 45, 60, 120, 300, 600, 1200, 1800, 2700, 3600, 5400, 7200, 86400]
EXTREME_ESTIMATES = [0.000001, 0.25, 59.999, 3650 * 86400]


@dataclass
class Producer:
    """An earlier step whose outputs later steps may reference."""

    service: str
    step: str
    uses: str
    outputs: dict[str, str]  # output name -> kind
    only: str | None
    drill_with: bool

    def key(self) -> str:
        return f"{self.service}.{self.step}"


@dataclass
class Draw:
    """What one plan's drawing needs to remember."""

    draw: Any
    region: str
    drill_region: str | None
    suffix: str
    rpo_plan: bool
    producers: list[Producer] = field(default_factory=list)
    counter: int = 0
    zones: list[str] = field(default_factory=list)

    def unique(self, base: str, *, limit: int = 63) -> str:
        """A name never used before in this plan: ``base-N``, within ``limit`` characters."""
        self.counter += 1
        tail = f"-{self.counter}"
        return base[: limit - len(tail)].rstrip("-") + tail

    def name(self, *, long_ok: bool = True) -> str:
        """A resource name: lowercase letters, digits and single hyphens, starting with a letter
        (acceptable to RDS, DynamoDB, S3, EBS and Auto Scaling alike); sometimes at the limit."""
        word = self.draw(st.sampled_from(NAME_WORDS))
        if long_ok and self.draw(st.integers(0, 9)) == 0:
            # At the limit: the number goes first, so a drill's shortened name stays unique.
            self.counter += 1
            return (f"{word}{self.counter}-" + "n" * 70)[:63]
        return self.unique(word)

    def source(self, kinds: set[str], *, only: str | None) -> str:
        """What a restore restores from: an earlier step's output, a name from a small pool that
        steps may share (some shorter than AWS allows for a table: validate does not check
        sources), or a name of its own."""
        ref = self.ref(kinds, only=only)
        if ref:
            return ref
        if self.draw(st.integers(0, 5)) == 0:
            pool = ["orders", "t.x", "a_b"] if "table" in kinds else ["x", "orders", "a1"]
            return self.draw(st.sampled_from(pool))
        return self.name()

    def target(self, *, only: str | None) -> str:
        """The name a restore creates: rarely an earlier step's output (known only at run time)."""
        ref = self.ref({"text", "cmd"}, only=only, chance=12)
        return ref if ref and len(ref) <= 63 else self.name()  # the schema limits the text, 63

    def ref(self, kinds: set[str] | None, *, only: str | None, chance: int = 3) -> str | None:
        """A ``${service.step.output}`` of an earlier step whose output is of one of ``kinds``
        (None: any output), with probability 1/``chance``; None when there is none to take.
        ``only`` is the mode the referencing parameter is used in (None: recoveries too), so
        that a recovery never needs a drill-only step (DR309)."""
        if self.draw(st.integers(1, chance)) != 1:
            return None
        candidates = [
            (p, out)
            for p in self.producers
            if not (p.only == "drill" and only != "drill")
            for out, kind in p.outputs.items()
            if kinds is None or kind in kinds
        ]
        if not candidates:
            return None
        p, out = self.draw(st.sampled_from(candidates))
        return f"${{{p.key()}.{out}}}"

    def free_text(self, *, only: str | None) -> str:
        """Text that may embed references (instructions, reasons, command arguments)."""
        words = self.draw(text(allow_empty=False))
        ref = self.ref(None, only=only, chance=2)
        return f"{words} {ref}" if ref else words


def step_region(d: Draw) -> str | None:
    if d.draw(st.integers(0, 7)) == 0:
        return d.draw(st.sampled_from(REGIONS))
    return None


def _max_age(d: Draw, rpo: bool) -> dict[str, Any]:
    choice = d.draw(st.integers(0, 3))
    if choice == 0 and rpo:
        return {"max_age": "rpo"}
    if choice == 1:
        return {
            "max_age": iso_duration(d.draw(st.sampled_from([3600, 86400, 604800])), d.draw(st.integers(0, 3)))
        }
    return {}


def _tags(d: Draw) -> dict[str, str]:
    keys = st.sampled_from(["app", "cost-center", "Name", "team", "drplan:step", "aws-x", "k k"]) | st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=10
    )
    values = st.sampled_from(["shop", "", "a b", "v" * 256]) | st.text(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10
    )
    return d.draw(st.dictionaries(keys, values, max_size=2))


def _past_timestamp(d: Draw) -> str:
    days = d.draw(st.integers(1, 60))
    moment = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=days, hours=3)
    style = d.draw(st.integers(0, 2))
    if style == 1:
        return moment.astimezone(timezone(timedelta(hours=1))).isoformat()
    if style == 2:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.250Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _port(d: Draw, only: str | None, low: int = 1150) -> Any:
    ref = d.ref({"port"}, only=only)
    return ref or d.draw(st.sampled_from([p for p in (3306, 5432, low, 65535) if p >= low]))


def _rds_common(d: Draw, only: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.draw(st.booleans()):
        out["instance_class"] = d.draw(st.sampled_from(["db.t3.micro", "db.r6g.large", "db.m5.xlarge"]))
    if d.draw(st.integers(0, 3)) == 0:
        out["subnet_group"] = d.unique("subnets")
    if d.draw(st.integers(0, 3)) == 0:
        out["security_groups"] = ["sg-0a1b2c3d4e5f60718"]
    if d.draw(st.integers(0, 3)) == 0:
        out["port"] = _port(d, only)
    if d.draw(st.integers(0, 4)) == 0:
        out["tags"] = _tags(d)
    return out


def params_for(
    d: Draw, uses: str, region: str, service_rpo: bool, only: str | None, *, drill_region: str | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(``with``, ``drill_with`` or None) for one step of action ``uses`` in ``region``; a drill
    runs it in ``drill_region`` when that is set."""
    draw = d.draw
    drill_with: dict[str, Any] | None = None
    if uses == "aws.rds.restore_snapshot":
        w: dict[str, Any] = {"target": d.target(only=only)}
        kind = draw(st.integers(0, 5))
        source = d.source({"rds_instance"}, only=only)
        if kind == 0:
            w["snapshot"] = d.unique("manual-snap")  # a named manual snapshot: seeded
            if draw(st.booleans()):
                w["source_instance"] = source
        elif kind == 1:
            w["snapshot"] = d.ref({"rds_snapshot"}, only=only, chance=1) or "latest"
            w["source_instance"] = source
        else:
            if draw(st.booleans()):
                w["snapshot"] = "latest"
            w["source_instance"] = source
            if draw(st.booleans()):
                w["include_automated"] = draw(st.booleans())
        if draw(st.integers(0, 3)) == 0:
            w["multi_az"] = draw(st.booleans())
        w.update(_max_age(d, service_rpo), **_rds_common(d, only))
    elif uses == "aws.rds.restore_point_in_time":
        w = {"source_instance": d.source({"rds_instance"}, only=only), "target": d.target(only=only)}
        if draw(st.booleans()):
            w["restore_time"] = "latest" if draw(st.booleans()) else _past_timestamp(d)
        w.update(_rds_common(d, only))
    elif uses == "aws.rds.restore_cluster_snapshot":
        w = {
            "source_cluster": d.source({"rds_cluster"}, only=only),
            "target": d.target(only=only),
            "instance_class": draw(st.sampled_from(["db.r6g.large", "db.t4g.medium"])),
        }
        if draw(st.booleans()):
            w["engine"] = draw(st.sampled_from(["aurora-postgresql", "aurora-mysql", "mysql", "postgres"]))
        if draw(st.booleans()):
            w["instances"] = draw(st.integers(1, 3))
        w.update(_max_age(d, service_rpo))
        common = _rds_common(d, only)
        common.pop("instance_class", None)
        w.update(common)
    elif uses == "aws.dynamodb.restore_backup":
        w = {"target": d.target(only=only)}
        backup = d.ref({"dynamo_backup"}, only=only, chance=4)
        if backup:
            w["backup"] = backup
        else:
            w["source_table"] = d.source({"table"}, only=only)
            if draw(st.booleans()):
                w["backup"] = "latest"
        if draw(st.booleans()):
            w["billing_mode"] = draw(st.sampled_from(["PAY_PER_REQUEST", "PROVISIONED"]))
        if draw(st.integers(0, 3)) == 0:
            w["tags"] = _tags(d)
        w.update(_max_age(d, service_rpo))
    elif uses == "aws.dynamodb.restore_point_in_time":
        w = {"source_table": d.source({"table"}, only=only), "target": d.target(only=only)}
        if draw(st.booleans()):
            w["restore_time"] = "latest" if draw(st.booleans()) else _past_timestamp(d)
        if draw(st.booleans()):
            w["billing_mode"] = draw(st.sampled_from(["PAY_PER_REQUEST", "PROVISIONED"]))
    elif uses == "aws.ec2.volume_from_snapshot":
        zone = d.ref({"az"}, only=only) or f"{region}{draw(st.sampled_from('abc'))}"
        w = {"name": d.name(), "availability_zone": zone}
        if draw(st.integers(0, 5)) == 0:
            w["snapshot"] = d.ref({"ebs_snapshot"}, only=only, chance=2) or "snap-0123456789abcdef0"
        else:
            w["snapshot_tags"] = {"app": d.unique("vol"), **({"tier": "1"} if draw(st.booleans()) else {})}
            if draw(st.booleans()):
                w["snapshot"] = "latest"
        volume_type = draw(st.sampled_from(["gp3", "gp2", "io1", "io2", "st1", "sc1", "standard", None]))
        if volume_type:
            w["volume_type"] = volume_type
        if volume_type in ("io1", "io2") or (volume_type == "gp3" and draw(st.booleans())):
            w["iops"] = 3000
        if volume_type == "gp3" and draw(st.booleans()):
            w["throughput"] = 250
        if draw(st.integers(0, 3)) == 0:
            w["attach"] = {"instance_id": "i-0123456789abcdef0", "device": "/dev/xvdf"}
        if drill_region and "${" not in zone:  # else DR104: a zone of another region
            drill_with = {"availability_zone": f"{drill_region}a"}
        w.update(_max_age(d, service_rpo))
        if draw(st.integers(0, 4)) == 0:
            w["tags"] = _tags(d)
    elif uses == "aws.s3.restore_versions":
        w = {"bucket": d.ref({"bucket"}, only=only) or d.name(long_ok=False)}
        w["at"] = (
            iso_duration(draw(st.sampled_from([60, 3600, 86400])), draw(st.integers(0, 3)))
            if draw(st.booleans())
            else _past_timestamp(d)
        )
        if draw(st.booleans()):
            w["prefix"] = draw(st.sampled_from(["", "static/", "a/b/", "ünï/"]))
        if draw(st.integers(0, 2)) == 0:
            w["target_bucket"] = d.name(long_ok=False)
        if draw(st.integers(0, 3)) == 0:
            w["target_prefix"] = draw(st.sampled_from(["restored/", ""]))
    elif uses == "aws.route53.change_record":
        zone = "Z0" + d.unique("ZONE").replace("-", "")
        record = f"{d.unique(draw(st.sampled_from(NAME_WORDS)))}.internal.example.com"
        w = {"zone_id": draw(st.sampled_from([zone, f"/hostedzone/{zone}"])), "name": record}
        rtype = draw(st.sampled_from(["CNAME", "CNAME", "A", "TXT", "AAAA", None]))
        if rtype:
            w["type"] = rtype
        if draw(st.integers(0, 5)) == 0 and rtype in ("A", None, "CNAME"):
            w["alias"] = {
                "dns_name": d.ref({"host"}, only=only) or "lb-1.us-east-1.elb.amazonaws.com",
                "hosted_zone_id": "Z35SXDOTRQ7X7K",
            }
            if draw(st.booleans()):
                w["alias"]["evaluate_target_health"] = draw(st.booleans())
        else:
            value = {
                "A": "192.0.2.10",
                "AAAA": "2001:db8::1",
                "TXT": '"' + draw(st.sampled_from(["v=1", "hello world"])) + '"',
            }.get(rtype or "CNAME")
            if value is None:  # CNAME
                value = d.ref({"host"}, only=only, chance=2) or "primary.example.com"
            w["values"] = [value]
            if draw(st.booleans()):
                w["ttl"] = draw(st.sampled_from([0, 60, 300, 2147483647]))
        if draw(st.integers(0, 5)) == 0:
            w["health_check_id"] = d.ref({"health_check"}, only=only, chance=2) or HEALTH_CHECK_ID
        if draw(st.integers(0, 4)) == 0:
            w["set_identifier"] = d.unique("set")
            if draw(st.booleans()):
                w["weight"] = draw(st.integers(0, 255))
            else:
                w["failover"] = draw(st.sampled_from(["PRIMARY", "SECONDARY"]))
        if draw(st.booleans()):
            w["wait"] = draw(st.booleans())
        if draw(st.integers(0, 2)) != 0:  # with drill_with: the drill runs it into a drill zone
            drill_zone = "Z0" + d.unique("DRILL").replace("-", "")
            drill_name = record.replace(".internal.", ".drill.")
            if draw(st.integers(0, 2)) == 0:  # each drill its own record
                drill_name = drill_name.replace(".drill.", "-{run_id}.drill.", 1)
            drill_with = {"zone_id": drill_zone, "name": drill_name}
            if "values" in w and draw(st.booleans()):
                drill_with["values"] = (
                    [d.ref({"host"}, only="drill", chance=1) or "drill.example.com"]
                    if (w.get("type", "CNAME") == "CNAME")
                    else w["values"]
                )
    elif uses == "aws.autoscaling.set_capacity":
        group = d.ref({"asg"}, only=only, chance=5) or d.unique("asg-" + draw(st.sampled_from(NAME_WORDS)))
        desired = d.ref({"count", "cmd"}, only=only, chance=6) or draw(st.integers(0, 12))
        w = {"group": group, "desired": desired}
        if isinstance(desired, int) and draw(st.booleans()):
            w["min"] = draw(st.integers(0, desired))
            w["max"] = desired + draw(st.integers(0, 10))
        if draw(st.booleans()):
            w["wait_in_service"] = draw(st.booleans())
        if draw(st.integers(0, 3)) != 0:
            drill_with = {"group": d.unique("asg-drill") + draw(st.sampled_from(["", "", "-{run_id}"]))}
            if draw(st.booleans()):
                drill_with["desired"] = draw(st.integers(0, 3))
                drill_with["min"] = 0
                drill_with["max"] = 3
    elif uses == "aws.backup.restore":
        kind = draw(
            st.sampled_from(
                [
                    "RDS",
                    "DynamoDB",
                    "EBS",
                    "EBS",
                    "Aurora",
                    "S3",
                    "EFS",
                    "EC2",
                    "FSx",
                    "DocumentDB",
                    "Neptune",
                ]
            )
        )
        name = d.name(long_ok=False)
        arn = {
            "RDS": f"arn:aws:rds:{region}:{ACCOUNT}:db:{name}",
            "Aurora": f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{name}",
            "DocumentDB": f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{name}",
            "Neptune": f"arn:aws:rds:{region}:{ACCOUNT}:cluster:{name}",
            "DynamoDB": f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}",
            "EBS": f"arn:aws:ec2:{region}:{ACCOUNT}:volume/vol-0a1b2c3d4e5f60718",
            "EC2": f"arn:aws:ec2:{region}:{ACCOUNT}:instance/i-0a1b2c3d4e5f60718",
            "S3": f"arn:aws:s3:::{name}",
            "EFS": f"arn:aws:elasticfilesystem:{region}:{ACCOUNT}:file-system/fs-0123456789abcdef0",
            "FSx": f"arn:aws:fsx:{region}:{ACCOUNT}:file-system/fs-0fedcba9876543210",
        }[kind]
        w = {
            "iam_role_arn": ROLE,
            "target": d.target(only=only),
            "vault": d.unique("vault"),
            "resource_arn": arn,
        }
        point = d.ref({"recovery_point"}, only=only, chance=6)
        if point:
            w["recovery_point"] = point
        elif draw(st.booleans()):
            w["recovery_point"] = "latest"
        if draw(st.booleans()) or kind in ("DocumentDB", "Neptune"):  # their ARNs read as Aurora
            w["resource_type"] = kind
        w.update(_backup_overrides(d, kind, region))
        if kind == "EBS" and draw(st.booleans()):  # the raw escape hatch, next to the typed parameters
            w["metadata"] = {"volumeType": "gp3"}
            if "availability_zone" not in w:
                w["metadata"]["availabilityZone"] = f"{region}a"
        elif kind == "RDS" and draw(st.booleans()):
            w["metadata"] = {"MultiAZ": "false"}
            if "instance_type" not in w:
                w["metadata"]["DBInstanceClass"] = "db.m6g.large"
        w.update(_max_age(d, service_rpo))
        if draw(st.integers(0, 4)) == 0:
            w["tags"] = _tags(d)
    elif uses == "check.http":
        whole = d.ref({"url"}, only=only, chance=6)
        if whole:
            url = whole
        else:
            host = d.ref({"host"}, only=only, chance=2)
            scheme = draw(st.sampled_from(["https", "http"]))
            if host:
                port = d.ref({"port"}, only=only, chance=2)
                url = f"{scheme}://{host}{':' + port if port else ''}/health"
            else:
                url = draw(
                    st.sampled_from(
                        [
                            "https://shop.example.com/healthz",
                            "http://127.0.0.1:9/x",
                            "https://app.example.com:8443/status?x=1&y=%20",
                            "https://ünicode.example.com/é",
                            "http://localhost:9/santé",
                        ]
                    )
                )
        w = {"url": url}
        if draw(st.booleans()):  # body assertions: the sandbox cannot vouch for content
            if draw(st.booleans()):
                w["body_contains"] = draw(st.sampled_from(["ok", "", '"status": "up"', "| pipe"]))
            else:
                w["body_matches"] = draw(st.sampled_from(["o+k", "^.*$", "(?i)UP", "a|b"]))
        if draw(st.booleans()):
            w["expect_status"] = draw(st.sampled_from([200, [200, 204], [301], 599, 100]))
        if draw(st.integers(0, 3)) == 0:
            w["method"] = draw(st.sampled_from(["GET", "HEAD", "POST", "OPTIONS"]))
        if draw(st.integers(0, 3)) == 0:
            w["headers"] = {"X-Drill": d.free_text(only=only), "Accept": "*/*"}
        if draw(st.integers(0, 3)) == 0:
            w["interval"] = iso_duration(draw(st.sampled_from([1, 1.5, 5, 30])), draw(st.integers(0, 4)))
        if draw(st.integers(0, 3)) == 0:
            w["request_timeout"] = iso_duration(draw(st.sampled_from([0.5, 1, 10])), draw(st.integers(0, 4)))
        if draw(st.integers(0, 2)) == 0:
            drill_url = d.ref({"url"}, only="drill", chance=4) or (
                f"https://{d.ref({'host'}, only='drill', chance=1) or draw(st.sampled_from(DRILL_HOSTS))}/health"
            )
            drill_with = {"url": drill_url}
    elif uses == "check.tcp":
        w = {
            "host": d.ref({"host"}, only=only, chance=2)
            or draw(st.sampled_from(["db.example.com", "127.0.0.1", "localhost", "10.0.0.1"])),
            "port": d.ref({"port"}, only=only, chance=2) or draw(st.sampled_from([1, 443, 5432, 65535])),
        }
        if draw(st.integers(0, 3)) == 0:
            w["interval"] = iso_duration(draw(st.sampled_from([1, 2, 5])), draw(st.integers(0, 4)))
        if draw(st.integers(0, 3)) == 0:
            drill_with = {
                "host": d.ref({"host"}, only="drill", chance=1) or draw(st.sampled_from(DRILL_HOSTS))
            }
    elif uses == "wait":
        w = {
            "duration": iso_duration(
                draw(st.sampled_from([0, 1, 1.5, 30, 300, 3600])), draw(st.integers(0, 4))
            )
        }
        if draw(st.booleans()):
            w["reason"] = d.free_text(only=only)
    elif uses == "manual":
        w = {"instructions": d.free_text(only=only)}
        if draw(st.booleans()):
            w["role"] = draw(st.sampled_from(["approver", "incident-commander", "nobody"]))
    elif uses == "command":
        kind = draw(st.integers(0, 2))
        if kind == 0:
            w = {"run": ["true"]}
        elif kind == 1:
            w = {"run": ["echo", "x=1"], "outputs": ["x"]}
        else:
            w = {"run": ["echo", d.free_text(only=only)]}
        if draw(st.integers(0, 3)) == 0:
            w["undo"] = ["true"]
        if draw(st.integers(0, 3)) == 0:
            w["env"] = {"DRPLAN_GENERATED": d.free_text(only=only)}
        if draw(st.integers(0, 4)) == 0:
            w["cwd"] = "."
    elif uses == "aws.ecs.set_capacity":
        w = {
            "cluster": d.unique("ecs"),
            "service": d.ref({"text"}, only=only, chance=8) or d.unique("svc"),
            "desired": d.ref({"count", "cmd"}, only=only, chance=6) or draw(st.integers(0, 10)),
        }
        if draw(st.booleans()):
            w["wait_steady"] = draw(st.booleans())
        if draw(st.integers(0, 3)) != 0:
            drill_with = {"cluster": d.unique("ecs-drill")}
    elif uses == "aws.eks.scale_nodegroup":
        desired = d.ref({"count", "cmd"}, only=only, chance=6) or draw(st.integers(0, 10))
        w = {"cluster": d.unique("eks"), "nodegroup": d.unique("ng"), "desired": desired}
        if isinstance(desired, int) and draw(st.booleans()):
            w["min"] = draw(st.integers(0, desired))
            w["max"] = max(1, desired + draw(st.integers(0, 5)))
        if draw(st.booleans()):
            w["wait"] = draw(st.booleans())
        if draw(st.integers(0, 3)) != 0:
            drill_with = {"nodegroup": d.unique("ng-drill")}
    elif uses == "aws.lambda.invoke":
        w = {"function": d.unique("fn")}
        if draw(st.integers(0, 3)) == 0:
            w["qualifier"] = draw(st.sampled_from(["$LATEST", "1", "live"]))
        if draw(st.booleans()):
            w["payload"] = draw(
                st.sampled_from(
                    [
                        {},
                        {"table": d.free_text(only=only)},
                        {"n": 1, "list": [1, "two", None, True], "nested": {"x": d.free_text(only=only)}},
                        [],
                        "a string",
                        42,
                        None,
                    ]
                )
            )
        if draw(st.booleans()):
            w["outputs"] = ["result"]
        if draw(st.integers(0, 4)) == 0:
            w["undo_function"] = d.unique("fn-undo")
            if draw(st.booleans()):
                w["undo_payload"] = {"undo": True}
    elif uses == "aws.rds.promote_read_replica":
        w = {"instance": d.ref({"rds_instance"}, only=only) or d.name()}
        if draw(st.booleans()):
            w["source_instance"] = d.name()
        if draw(st.booleans()):
            w["backup_retention_days"] = draw(st.integers(0, 35))
        if draw(st.booleans()):
            w["backup_window"] = draw(st.sampled_from(["03:00-03:30", "23:30-00:00"]))
        if draw(st.integers(0, 2)) != 0:
            drill_with = {"instance": d.name()}
    elif uses in ("aws.rds.switchover_global_cluster", "aws.rds.failover_global_cluster"):
        w = {"global_cluster": d.name(), "target_cluster": d.ref({"rds_cluster"}, only=only) or d.name()}
        if draw(st.booleans()):
            w["source_cluster"] = d.name()
        if draw(st.integers(0, 2)) != 0:
            drill_with = {"global_cluster": d.name(), "target_cluster": d.name()}
    elif uses == "check.cloudwatch_alarm":
        w = {
            "alarm": d.ref({"text"}, only=only, chance=8)
            or d.unique("alarm " + draw(text(allow_empty=False))[:40])
        }
        if draw(st.booleans()):
            w["state"] = draw(st.sampled_from(["OK", "ALARM", "INSUFFICIENT_DATA"]))
        if draw(st.booleans()):
            w["for"] = iso_duration(draw(st.sampled_from([0, 1, 60, 300])), draw(st.integers(0, 4)))
        if draw(st.integers(0, 3)) == 0:
            w["interval"] = iso_duration(draw(st.sampled_from([1, 5, 30])), draw(st.integers(0, 4)))
    elif uses == "check.route53_health":
        w = {"health_check_id": d.ref({"health_check"}, only=only, chance=3) or HEALTH_CHECK_ID}
        if draw(st.booleans()):
            w["min_healthy_percent"] = draw(st.sampled_from([1, 50, 100]))
        if draw(st.integers(0, 3)) == 0:
            w["interval"] = iso_duration(draw(st.sampled_from([1, 5, 30])), draw(st.integers(0, 4)))
    elif uses == "aws.arc.set_routing_control":
        panel = f"arn:aws:route53-recovery-control::{ACCOUNT}:controlpanel/abc123"

        def endpoints() -> list[dict[str, str]]:
            # Loopback only: the action calls the cluster endpoints it is given, and a test must
            # never send traffic off this machine.
            chosen = draw(
                st.lists(
                    st.sampled_from(["https://127.0.0.1:9", "https://localhost:9/v1"]),
                    min_size=1,
                    unique=True,
                )
            )
            return [{"endpoint": e, "region": draw(st.sampled_from(REGIONS))} for e in chosen]

        w = {
            "routing_control_arn": d.ref({"routing_control"}, only=only, chance=4)
            or f"{panel}/routingcontrol/{d.unique('rc').replace('-', '')}",
            "state": draw(st.sampled_from(["On", "Off"])),
            "cluster_endpoints": endpoints(),
        }
        if draw(st.integers(0, 3)) == 0:
            w["safety_rules_to_override"] = [f"{panel}/safetyrule/{d.unique('sr').replace('-', '')}"]
        if draw(st.integers(0, 2)) != 0:
            drill_with = {
                "routing_control_arn": f"{panel}/routingcontrol/{d.unique('drill').replace('-', '')}",
                "cluster_endpoints": endpoints(),
            }
    else:  # pragma: no cover - every action is listed above
        raise AssertionError(uses)
    return w, drill_with


def available_actions() -> list[str]:
    """The actions of :data:`ACTIONS` this drplan has (``drplan actions``)."""
    from drplan.actions import registry

    return [name for name in ACTIONS if name in registry()]


def _backup_overrides(d: Draw, kind: str, region: str) -> dict[str, Any]:
    """Some of the typed parameters an ``aws.backup.restore`` of ``kind`` takes (a DR account's key
    and network), never one of another type's (validate refuses those)."""
    from drplan.actions.backup.targets import OVERRIDES

    key = f"arn:aws:kms:{region}:210987654321:key/2f1c6a0e-8d55-4c11-9b1e-1f2a3b4c5d6e"
    values: dict[str, Any] = {
        "kms_key": d.draw(st.sampled_from([key, "alias/dr-restore"])),
        "subnet": "subnet-0a1b2c3d4e5f60718",
        "subnets": d.draw(
            st.sampled_from([["subnet-0a1b2c3d4e5f60718"], ["subnet-0a1b2c3d", "subnet-1b2c3d4e"]])
        ),
        "subnet_group": d.draw(st.sampled_from(["dr-private", "default"])),
        "security_groups": d.draw(
            st.sampled_from([["sg-0a1b2c3d4e5f60718"], ["sg-0a1b2c3d", "sg-1b2c3d4e"]])
        ),
        "instance_type": "db.r6g.large" if kind == "RDS" else "t3.large",
        "instance_profile": "web-dr",
        "availability_zone": f"{region}b",
    }
    allowed = sorted(OVERRIDES.get(kind, {}))
    chosen = d.draw(st.lists(st.sampled_from(allowed), unique=True, max_size=3)) if allowed else []
    return {param: values[param] for param in chosen}


def outputs_of(uses: str, params: dict[str, Any]) -> dict[str, str]:
    """Output name -> kind, for the outputs the action declares with these parameters (an
    ``aws.backup.restore`` has an ``endpoint`` only for databases; a command its ``outputs``)."""
    from drplan.actions import registry

    declared = registry()[uses].declared_outputs(params)
    kinds = {**OUTPUT_KINDS[uses], **{name: "cmd" for name in params.get("outputs", [])}}
    return {name: kind for name, kind in kinds.items() if name in declared}


def effective_estimate(step: dict[str, Any]) -> float:
    """The seconds the prediction assumes for ``step`` (its estimate, else the action's)."""
    from drplan.actions import registry
    from drplan.durations import duration_seconds

    if "estimate" in step:
        return duration_seconds(step["estimate"])
    return registry()[step["uses"]].estimate(step["with"]).total_seconds()


@st.composite
def plans(draw: Any) -> dict[str, Any]:
    """A plan drawn to be valid (see the module docstring for what is left to chance)."""
    with_aws = draw(st.integers(0, 7)) != 0
    # Without `aws`, steps run in the default region: the tests' AWS_DEFAULT_REGION, us-east-1.
    region = draw(st.sampled_from(REGIONS)) if with_aws else "us-east-1"
    drill_region = draw(st.sampled_from(REGIONS)) if draw(st.integers(0, 7)) == 0 else None
    suffix = draw(
        st.sampled_from(
            [
                "-drill-{run_id}",
                "-drill-{run_id}",
                "-drill-{run_id}",
                "-drill-{run_id}",
                "-{run_id}",
                "-dr-{run_id}",
                "{run_id}",
                "-{run_id}-x",
                "-d{run_id}-{run_id}",
                "-drill-" + "long" * 8 + "-{run_id}",
                "-{run_id}{}",
            ]
        )
    )
    plan_rpo = draw(st.integers(0, 2)) != 0
    d = Draw(draw=draw, region=region, drill_region=drill_region, suffix=suffix, rpo_plan=plan_rpo)
    allow_commands = draw(st.integers(0, 3)) == 0
    actions = [a for a in available_actions() if a != "command" or allow_commands]
    weighted = [a for a in actions for _ in range(ACTIONS[a])]

    count = draw(st.integers(1, 4))
    service_ids = draw(st.lists(st.sampled_from(SERVICE_IDS), min_size=count, max_size=count, unique=True))
    services: dict[str, dict[str, Any]] = {}
    for index, sid in enumerate(service_ids):
        service: dict[str, Any] = {}
        earlier = service_ids[:index]
        if earlier and draw(st.integers(0, 2)) != 0:
            service["depends_on"] = draw(st.lists(st.sampled_from(earlier), min_size=1, unique=True))
        objectives: dict[str, str] = {}
        if draw(st.integers(0, 3)) == 0:
            objectives["rpo"] = iso_duration(
                draw(st.sampled_from([300, 900, 3600, 86400])), draw(st.integers(0, 3))
            )
        rpo_applies = plan_rpo or "rpo" in objectives
        step_ids = draw(st.lists(st.sampled_from(STEP_IDS), min_size=1, max_size=4, unique=True))
        steps = []
        for step_id in step_ids:
            uses = draw(st.sampled_from(weighted))
            only = draw(st.sampled_from([None, None, None, None, None, "drill", "recover"]))
            this_region = step_region(d) if uses.startswith("aws.") else None
            params, drill_with = params_for(
                d,
                uses,
                this_region or region,
                rpo_applies,
                only,
                drill_region=None if this_region else drill_region,
            )
            step: dict[str, Any] = {"id": step_id, "uses": uses, "with": params}
            if drill_with is not None:
                step["drill_with"] = drill_with
            if this_region:
                step["region"] = this_region
            if only:
                step["only"] = only
            if draw(st.integers(0, 4)) != 0:
                values = EXTREME_ESTIMATES if draw(st.integers(0, 30)) == 0 else ESTIMATES
                step["estimate"] = iso_duration(draw(st.sampled_from(values)), draw(st.integers(0, 4)))
            if draw(st.booleans()):
                base = max(effective_estimate(step), 1)
                seconds = min(math.ceil(base * draw(st.sampled_from([0.5, 1, 2, 4, 10]))), 3650 * 86400)
                if draw(st.integers(0, 20)) == 0:
                    seconds = draw(st.sampled_from([0.001, 0.5, 3650 * 86400]))
                step["timeout"] = iso_duration(seconds, draw(st.integers(0, 4)))
            if draw(st.integers(0, 5)) == 0:
                step["retries"] = draw(st.sampled_from([0, 1, 2, 10]))
            # `after`: earlier steps of this service or of earlier services (never a later one).
            if draw(st.integers(0, 4)) == 0:
                choices = [
                    (p.key(), p.service == sid)
                    for p in d.producers
                    if not (p.only == "drill" and only != "drill")
                ]
                picked = draw(st.lists(st.sampled_from(choices), max_size=3, unique=True)) if choices else []
                step["after"] = [
                    key.split(".", 1)[1] if same and draw(st.booleans()) else key for key, same in picked
                ]
            if draw(st.integers(0, 3)) == 0:
                step["name"] = draw(text())
            if draw(st.integers(0, 4)) == 0:
                step["description"] = draw(text())
            if uses.startswith("aws.") and draw(st.integers(0, 15)) == 0:
                step["role_arn"] = f"arn:aws:iam::{ACCOUNT}:role/drplan-step"
            steps.append(step)
            d.producers.append(
                Producer(sid, step_id, uses, outputs_of(uses, params), only, drill_with is not None)
            )
        service["steps"] = steps
        if draw(st.integers(0, 2)) == 0:
            service["tier"] = draw(st.integers(1, 4))
        if draw(st.integers(0, 3)) == 0:
            service["owner"] = draw(text(allow_empty=False))
        if draw(st.integers(0, 3)) == 0:
            service["description"] = draw(text())
        service["_objectives"] = objectives
        services[sid] = service

    # RTOs: relative to the sum of every effective estimate, an upper bound of any predicted RTO.
    total = sum(effective_estimate(s) for sv in services.values() for s in sv["steps"])

    def rto() -> str:
        factor = draw(st.sampled_from([0.3, 1, 1, 1.5, 2, 2, 3, 5, 5, 10, 20, 100]))
        return iso_duration(min(math.ceil(total * factor), 3650 * 86400), draw(st.integers(0, 4)))

    plan_objectives: dict[str, str] = {}
    if draw(st.integers(0, 5)) != 0:
        plan_objectives["rto"] = rto()
    if plan_rpo:
        plan_objectives["rpo"] = iso_duration(
            draw(st.sampled_from([900, 3600, 86400, 604800])), draw(st.integers(0, 3))
        )
    for service in services.values():
        objectives = service.pop("_objectives")
        if draw(st.integers(0, 3)) == 0:
            objectives["rto"] = rto()
        if objectives:
            service["objectives"] = dict(sorted(objectives.items()))

    plan: dict[str, Any] = {
        "drplan": 1,
        "name": draw(st.sampled_from(["shop", "payments.eu", "x", "dr_plan-2"])),
    }
    if draw(st.booleans()):
        plan["description"] = draw(text())
    if draw(st.integers(0, 2)) == 0:
        plan["owner"] = draw(text(allow_empty=False))
    if draw(st.integers(0, 2)) == 0:
        plan["contacts"] = [
            {"role": "approver", "name": draw(text(allow_empty=False)), "contact": "pager:x"},
            {"role": "incident-commander", "name": "On call", "contact": draw(text(allow_empty=False))},
        ][: draw(st.integers(1, 2))]
    if plan_objectives:
        plan["objectives"] = plan_objectives
    aws: dict[str, str] = {"region": region}
    if draw(st.integers(0, 3)) == 0:
        aws["account_id"] = ACCOUNT
    if draw(st.integers(0, 15)) == 0:
        aws["role_arn"] = f"arn:aws:iam::{ACCOUNT}:role/drplan"
    if with_aws:
        plan["aws"] = aws
    drill: dict[str, Any] = {}
    if suffix != "-drill-{run_id}" or draw(st.booleans()):
        drill["name_suffix"] = suffix
    if draw(st.integers(0, 3)) == 0:
        drill["cleanup"] = draw(st.sampled_from(["always", "on_success", "never"]))
    if draw(st.integers(0, 3)) == 0:
        drill["tags"] = _tags(d)
    if drill_region:
        drill["region"] = drill_region
    if drill:
        plan["drill"] = drill
    if draw(st.integers(0, 2)) == 0:
        plan["run"] = {"parallelism": draw(st.sampled_from([1, 2, 3, 16, 256]))}
    if draw(st.integers(0, 3)) == 0:
        plan["tags"] = _tags(d)
    if allow_commands:
        plan["allow_commands"] = True
    order = draw(st.permutations(list(services)))  # the file's order is not the graph's
    plan["services"] = {sid: services[sid] for sid in order}
    return plan


#: The longest a check may poll in a generated drill: a check that cannot pass (an unexpected
#: status from the sandbox's stand-in) polls until its timeout, by default at least 5 minutes.
DRILL_CHECK_TIMEOUT = 15
#: At most this many retries in a generated drill: they back off exponentially (10 take minutes).
DRILL_RETRIES = 2


def for_drill(plan: dict[str, Any]) -> dict[str, Any]:
    """``plan`` with every check's timeout at most :data:`DRILL_CHECK_TIMEOUT` seconds and at most
    :data:`DRILL_RETRIES` retries per step, so that a drill of it ends within the test's time (a
    shorter timeout is at most a DR306 warning)."""
    from drplan.durations import duration_seconds

    out = json.loads(json.dumps(plan))
    for service in out["services"].values():
        for step in service["steps"]:
            if step.get("retries", 0) > DRILL_RETRIES:
                step["retries"] = DRILL_RETRIES
            if not step["uses"].startswith("check."):
                continue
            if "timeout" not in step or duration_seconds(step["timeout"]) > DRILL_CHECK_TIMEOUT:
                step["timeout"] = f"PT{DRILL_CHECK_TIMEOUT}S"
    return out
