"""``aws.s3.restore_versions`` in a state machine: put the objects under a prefix back to their
versions at a point in time, as the local action does (``drplan/actions/s3/restore.py`` and
``versions.py``).

**Start.** The checks of ``_problem``, with its messages: overlapping prefixes in one bucket (known
when the plan is exported: the step is then one ``Fail``), then ``GetBucketVersioning`` of the
source: missing, access denied, not versioned, versioning suspended when restoring into the source
bucket. ``at`` is a literal: a timestamp, or a duration before the run's start (``$.run.created``,
subtracted in JSONata); it is the step's recovery point (``s3://BUCKET/PREFIX@TIME``, as locally).
A target bucket other than the source is prepared as ``prepare_target`` does: created (with a
``LocationConstraint`` outside us-east-1), tagged with the run's tags and versioned; one that
exists is used when it is this step's of this run (its drplan tags, or in a drill its name, which
holds the run id), else only when versioned, and never deleted.

**The restore,** page by page (``ListObjectVersions``, :data:`~drplan.actions.s3.restore.BATCH_KEYS`
entries a page, as locally), never a list of the whole prefix: one JSONata state reduces each key's
versions and delete markers to the two that matter (the current one, and the one current at ``at``)
and decides as ``decide`` does; a key whose versions go on in the next page is carried to it as
those two entries. An inline ``Map`` (one key at a time, in key order) then copies a version forward
(``CopyObject`` of that version id, keeping the storage classes the local action keeps), deletes
(``DeleteObject``: a delete marker), or leaves the key; for a target bucket that existed before the
step, ``HeadObject`` of the target key first (unchanged when it holds the same ETag and size).
The outputs are ``result()``'s.

**Differences from the local run, and limits** (each fails the step with a message; nothing is
approximated):

- One execution's history holds 25,000 events and every key costs some: a prefix with more than
  :data:`MAX_KEYS` keys or :data:`MAX_ENTRIES` versions and delete markers fails the step before
  anything is written (a first pass counts them), where ``drplan recover`` restores any number.
- A version over 5 GiB (CopyObject's limit) fails the step when its turn comes; the local action
  copies it in parts (``UploadPartCopy``).
- Of a delete marker and a version of the same key in the same second, the version counts as the
  newer one (the local rule); locally a key with more than a page of versions may see such a pair
  in list order instead, when the two fall on different pages.
- A bucket the step made in a recovery is not claimed in the evidence (the outputs do not say
  whether the target existed before); a drill's always is.
- The local memo of a create whose answer was lost (an untagged bucket of the same name adopted as
  the step's own) is not kept: such a bucket is used like any existing one.
- S3 names some errors only by HTTP status (a ``HeadObject`` of a missing key): Step Functions
  then names them ``S3.S3Exception``; 404, 403 and 409 are told apart by the status in the error's
  cause (``... (Service: S3, Status Code: 404, ...)``), the others by the names Step Functions gives
  (``S3.NoSuchBucketException`` ...).
- The copy source is URL-encoded by segments (``$encodeUrlComponent``), as S3 expects it.

**Undo.** The local undo deletes the bucket the step created, or exactly the versions and delete
markers it wrote, by version id, a list no execution's state can hold. A drill's bucket (and a
recovery's new target bucket, carrying this step's tags) is emptied (every version and delete
marker, ``DeleteObjects`` in batches; unfinished multipart uploads aborted) and deleted until
``GetBucketVersioning`` says it is gone; one tagged by another drplan run is not touched (the local
message). Otherwise the undo succeeds only when the step wrote nothing (its record counts none
restored or deleted) and fails, saying so, when it did. So a recovery with ``retries`` is refused
(the undo before a retry could not be exact), so is ``--rollback-on-failure`` of a restore in place,
and a rollback of a restore that wrote into a target bucket that existed before (known only when
the step runs) ends with that undo failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from drplan.model import Mode
from drplan.resources import Resource
from drplan.stepfunctions.builder import RUN_ID_MARKER, Path, Scope, State, Untranslatable, goto, template
from drplan.stepfunctions.tasks import (
    POINT_IN_TIME,
    STEP_FAILED,
    THROTTLE_RETRY,
    StepInfo,
    Translation,
    choice,
    chosen_point,
    done,
    fail,
    jsonata_set,
    jsonata_text,
    pass_state,
    poll_loop,
    polled_events,
    undo_waits,
)

#: What Step Functions names S3's throttling and transient errors (with and without the suffix it
#: adds to unmodelled names), retried with the local engine's backoff.
TRANSIENT = [
    f"S3.{code}{suffix}"
    for code in ("SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout")
    for suffix in ("", "Exception")
]
#: The errors of S3 calls a state looks at (by name and by the HTTP status in the cause).
S3_ERRORS = [
    "S3.S3Exception",
    "S3.NoSuchBucketException",
    "S3.NoSuchKeyException",
    "S3.NoSuchVersionException",
    "S3.InvalidObjectStateException",
    "S3.ObjectNotInActiveTierErrorException",
    "S3.BucketAlreadyExistsException",
    "S3.BucketAlreadyOwnedByYouException",
]
#: At most this many keys, and versions and delete markers, under the prefix: what one execution's
#: history holds with room for the plan's other steps (about 12 events a key).
MAX_KEYS = 500
MAX_ENTRIES = 10_000
#: History events of the step: the keys, the pages of both passes, and the fixed states.
EVENTS_PER_KEY = 14
EVENTS_PER_PAGE = 14
#: CopyObject's limit (``restore.COPY_LIMIT``).
COPY_LIMIT = 5 * 1024**3
#: Undo: versions listed (and deleted) at a time; the answer must fit a state's 256 KiB.
UNDO_PAGE = 200


def _page() -> int:
    """The page size of the listing: the local action's batch (read when exporting)."""
    from drplan.actions.s3 import restore

    return int(restore.BATCH_KEYS)


def _s3(
    action: str,
    parameters: Mapping[str, Any],
    then: str | None,
    *,
    result: str | None = None,
    selector: Mapping[str, Any] | None = None,
    catch: str | None = None,
    error: str = "$.w.error",
) -> State:
    """An ``aws-sdk:s3`` Task, retried on throttling; S3 errors caught to ``catch`` at ``error``."""
    state: State = {
        "Type": "Task",
        "Resource": f"arn:aws:states:::aws-sdk:s3:{action}",
        "Parameters": template(parameters),
        "ResultPath": result,
        "Retry": [{"ErrorEquals": TRANSIENT, **THROTTLE_RETRY}],
    }
    if selector is not None:
        state["ResultSelector"] = template(selector)
    if catch is not None:
        state["Catch"] = [{"ErrorEquals": S3_ERRORS, "ResultPath": error, "Next": catch}]
    return goto(state, then)


def _status(code: int, error: str = "$.w.error") -> dict[str, Any]:
    return {"Variable": f"{error}.Cause", "StringMatches": f"*Status Code: {code},*"}


def _is(rule: Mapping[str, Any], names: list[str], error: str = "$.w.error") -> dict[str, Any]:
    """``rule`` or any of the error ``names`` (as Step Functions and moto spell them)."""
    spelled = [*names, *(f"s3.{n[3:]}" for n in names)]
    return {"Or": [rule, *({"Variable": f"{error}.Error", "StringEquals": n} for n in spelled)]}


def _reraise(error: str = "$.w.error") -> State:
    return {"Type": "Fail", "ErrorPath": f"{error}.Error", "CausePath": f"{error}.Cause"}


def _jsonata_pass(output: str, then: str | None) -> State:
    return goto({"Type": "Pass", "QueryLanguage": "JSONata", "Output": output}, then)


class S3RestoreVersions(Translation):
    action = "aws.s3.restore_versions"
    understood = frozenset({"bucket", "prefix", "at", "target_bucket", "target_prefix"})

    # --- what the parameters mean (``RestoreVersions._where``) -----------------------------------

    def _where(self, info: StepInfo) -> tuple[str, str, str, str]:
        p = info.params
        bucket, prefix = str(p["bucket"]), str(p.get("prefix", ""))
        target = str(p.get("target_bucket") or bucket)
        return bucket, prefix, target, str(p.get("target_prefix", prefix))

    def _at(self, info: StepInfo) -> tuple[str, float]:
        """``("at", epoch ms)`` for a timestamp, ``("before", ms)`` for a duration before the run."""
        from drplan.durations import parse_duration

        value = str(self.literal(info, "at"))
        if value.startswith("P"):
            try:
                return "before", parse_duration(value).total_seconds() * 1000
            except Exception as exc:
                raise Untranslatable(f"`at` {value!r} is not an ISO 8601 duration") from exc
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError as exc:
            raise Untranslatable(
                f"`at` {value!r} is not an RFC 3339 timestamp or an ISO 8601 duration"
            ) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return "at", moment.timestamp() * 1000

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "bucket", "prefix", "target_bucket", "target_prefix")
        self._at(info)
        if info.mode == "recover" and info.step.retries:
            raise Untranslatable(
                "`retries` in a recovery: the undo before a retry deletes exactly the versions the attempt "
                "wrote, a list the state machine cannot keep"
            )
        bucket, _, target, _ = self._where(info)
        if info.rollback and target == bucket:
            raise Untranslatable(
                "--rollback-on-failure of a restore in place: its undo deletes exactly the versions the "
                "step wrote, a list the state machine cannot keep"
            )

    def waits(self, info: StepInfo) -> None:
        return None  # no job to poll: it copies key by key (history_events)

    def history_events(self, info: StepInfo, *, undone: bool = False) -> int:
        """The step's own events, the states of every key and page it may go through at the most,
        and when ``undone`` the polls of its undo (a drill bucket's deletion)."""
        pages = 2 * math.ceil(MAX_ENTRIES / _page())
        keys = MAX_KEYS * EVENTS_PER_KEY + pages * EVENTS_PER_PAGE
        return keys + polled_events(info, None, undo_waits(info.options) if undone else None)

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        """A drill's bucket (always the step's own). A recovery's target may have existed: the outputs
        do not say, and nothing is claimed that is not known."""
        if mode != "drill" or not outputs.get("bucket"):
            return []
        bucket = str(outputs["bucket"])
        return [Resource("s3:bucket", bucket, region, f"arn:aws:s3:::{bucket}")]

    # --- running ----------------------------------------------------------------------------------

    def work(self, info: StepInfo, scope: Scope) -> str:
        bucket, prefix, target, target_prefix = self._where(info)
        if (
            target == bucket
            and target_prefix != prefix
            and (target_prefix.startswith(prefix) or prefix.startswith(target_prefix))
        ):
            return scope.add(
                info.label("prefixes overlap"),
                fail(
                    f"target prefix {target_prefix!r} overlaps prefix {prefix!r} in bucket {bucket}; "
                    "restored objects would be restored again"
                ),
            )
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {
                    "bucket": Path("$.w.tb"),
                    "prefix": target_prefix,
                    "restored": Path("$.w.n.restored"),
                    "deleted": Path("$.w.n.deleted"),
                    "unchanged": Path("$.w.n.unchanged"),
                },
                None,
            ),
        )
        restore = self._restore(info, scope, outputs)
        counted = self._count(info, scope, restore)
        if target != bucket:
            counted = self._prepare(info, scope, counted)
        chosen = scope.add(info.label("point in time chosen"), chosen_point(info, POINT_IN_TIME, counted))
        kind, ms = self._at(info)
        moment = str(int(ms)) if kind == "at" else f"$toMillis($states.input.run.created) - {int(ms)}"
        point = scope.add(
            info.label("point in time"),
            _jsonata_pass(
                "{% ($ms := "
                + moment
                + "; $merge([$states.input, {'w': $merge([$states.input.w, {'at': $ms, 'best': "
                + "{'t': $fromMillis($ms), 'v': {'source': "
                + jsonata_text(f"s3://{bucket}/{prefix}")
                + "}}}])}])) %}",
                chosen,
            ),
        )
        checked = self._versioning(info, scope, point, in_bucket=target == bucket)
        return scope.add(
            info.label("where"),
            pass_state({"tb": info.v(target), "made": {"v": False}}, checked, result="$.w"),
        )

    def _versioning(self, info: StepInfo, scope: Scope, then: str, *, in_bucket: bool) -> str:
        """``_problem``'s look at the source bucket."""
        bucket = self._where(info)[0]
        missing = scope.add(info.label("source missing"), fail(f"bucket {bucket} does not exist"))
        forbidden = scope.add(
            info.label("source forbidden"), fail(f"cannot read bucket {bucket} (access denied)")
        )
        unversioned = scope.add(
            info.label("source not versioned"),
            fail(f"bucket {bucket} is not versioned: there are no older versions to restore"),
        )
        errored = scope.add(
            info.label("source error?"),
            choice(
                [
                    {**_is(_status(404), ["S3.NoSuchBucketException"]), "Next": missing},
                    {**_status(403), "Next": forbidden},
                ],
                scope.add(info.label("source error"), _reraise()),
            ),
        )
        rules: list[dict[str, Any]] = [
            {"Variable": "$.w.ver.Status", "IsPresent": False, "Next": unversioned},
            {"Variable": "$.w.ver.Status", "StringEquals": "Enabled", "Next": then},
        ]
        if in_bucket:
            suspended = scope.add(
                info.label("source versioning suspended"),
                fail(
                    f"versioning is suspended on bucket {bucket}; restoring into it would overwrite its null versions"
                ),
            )
            rules.append({"Variable": "$.w.ver.Status", "StringEquals": "Suspended", "Next": suspended})
        else:
            rules.append({"Variable": "$.w.ver.Status", "StringEquals": "Suspended", "Next": then})
        status = scope.add(info.label("source versioned?"), choice(rules, unversioned))
        return scope.add(
            info.label("source versioning"),
            _s3("getBucketVersioning", {"Bucket": bucket}, status, result="$.w.ver", catch=errored),
        )

    def _prepare(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``prepare_target``: the target bucket created, tagged and versioned, or an existing one
        used (``$.w.made``: whether the step counts it as its own)."""
        target = self._where(info)[2]
        inaccessible = scope.add(
            info.label("target forbidden"),
            fail(
                Path(
                    "States.Format('target bucket {{}} exists and is not accessible; refusing to use it', $.w.tb)"
                )
            ),
        )
        taken = scope.add(
            info.label("target taken"),
            fail(Path("States.Format('target bucket {} already exists; refusing to write into it', $.w.tb)")),
        )
        versioned = scope.add(
            info.label("version target"),
            _s3(
                "putBucketVersioning",
                {"Bucket": Path("$.w.tb"), "VersioningConfiguration": {"Status": "Enabled"}},
                then,
            ),
        )
        tagged = scope.add(
            info.label("tag target"),
            _s3(
                "putBucketTagging",
                {"Bucket": Path("$.w.tb"), "Tagging": {"TagSet": info.aws_tags()}},
                versioned,
            ),
        )
        ours = scope.add(info.label("target is ours"), pass_state({"v": True}, tagged, result="$.w.made"))
        # CreateBucket: BucketAlreadyOwnedByYou is this step's own call answered twice (ours).
        create_failed = scope.add(
            info.label("create error?"),
            choice(
                [
                    {
                        **_is(
                            {"Variable": "$.w.error.Cause", "StringMatches": "*you already own it*"},
                            ["S3.BucketAlreadyOwnedByYouException"],
                        ),
                        "Next": ours,
                    },
                    {**_is(_status(409), ["S3.BucketAlreadyExistsException"]), "Next": taken},
                ],
                scope.add(info.label("create error"), _reraise()),
            ),
        )
        here = scope.add(
            info.label("create bucket (us-east-1)"),
            _s3("createBucket", {"Bucket": Path("$.w.tb")}, ours, catch=create_failed),
        )
        there = scope.add(
            info.label("create bucket"),
            _s3(
                "createBucket",
                {
                    "Bucket": Path("$.w.tb"),
                    "CreateBucketConfiguration": {"LocationConstraint": Path("$.w.region.r")},
                },
                ours,
                catch=create_failed,
            ),
        )
        where = scope.add(
            info.label("region?"),
            choice([{"Variable": "$.w.region.r", "StringEquals": "us-east-1", "Next": here}], there),
        )
        region = scope.add(
            info.label("region"),
            pass_state(
                {"r": Path("States.ArrayGetItem(States.StringSplit($$.StateMachine.Id, ':'), 3)")},
                where,
                result="$.w.region",
            ),
        )
        # An existing bucket: ours (this run's and step's tags; a drill's name holds the run id).
        if RUN_ID_MARKER in target:
            existing = ours
        else:
            unversioned = scope.add(
                info.label("target not versioned"),
                fail(
                    Path(
                        "States.Format('target bucket {} exists and is not versioned; refusing to write into it', $.w.tb)"
                    )
                ),
            )
            usable = scope.add(
                info.label("existing target versioned?"),
                choice(
                    [{"Variable": "$.w.tver.Status", "StringEquals": "Enabled", "Next": then}], unversioned
                ),
            )
            unversioned_rule = {"Variable": "$.w.tver.Status", "IsPresent": False, "Next": unversioned}
            mine = scope.add(
                info.label("tags ours?"),
                {
                    "Type": "Choice",
                    "QueryLanguage": "JSONata",
                    "Choices": [
                        {
                            "Condition": "{% ($t := $states.input.w.ttags.TagSet; "
                            + "$t[Key = 'drplan:run-id'].Value = $states.input.run.id and "
                            + f"$t[Key = 'drplan:step'].Value = {jsonata_text(info.key)}) %}}",
                            "Next": ours,
                        }
                    ],
                    "Default": scope.add(info.label("existing target"), choice([unversioned_rule], usable)),
                },
            )
            untagged = scope.add(info.label("no tags"), pass_state({"TagSet": []}, mine, result="$.w.ttags"))
            tag_failed = scope.add(
                info.label("tags error?"),
                choice(
                    [{"Or": [_status(404), _status(403)], "Next": untagged}],
                    scope.add(info.label("tags error"), _reraise()),
                ),
            )
            existing = scope.add(
                info.label("target tags"),
                _s3(
                    "getBucketTagging", {"Bucket": Path("$.w.tb")}, mine, result="$.w.ttags", catch=tag_failed
                ),
            )
        target_failed = scope.add(
            info.label("target error?"),
            choice(
                [
                    {**_is(_status(404), ["S3.NoSuchBucketException"]), "Next": region},
                    {**_status(403), "Next": inaccessible},
                ],
                scope.add(info.label("target error"), _reraise()),
            ),
        )
        return scope.add(
            info.label("target versioning"),
            _s3(
                "getBucketVersioning",
                {"Bucket": Path("$.w.tb")},
                existing,
                result="$.w.tver",
                catch=target_failed,
            ),
        )

    # --- listing ----------------------------------------------------------------------------------

    def _list(self, info: StepInfo, scope: Scope, tag: str, then: str) -> str:
        """``ListObjectVersions`` of the next page (``$.w.l.km``/``vm``: where the last one ended),
        the answer at ``$.w.page``."""
        bucket, prefix = self._where(info)[:2]
        call = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": _page()}
        first = scope.add(
            info.label(f"{tag}list versions"), _s3("listObjectVersions", call, then, result="$.w.page")
        )
        more = scope.add(
            info.label(f"{tag}list more versions"),
            _s3(
                "listObjectVersions",
                {**call, "KeyMarker": Path("$.w.l.km"), "VersionIdMarker": Path("$.w.l.vm")},
                then,
                result="$.w.page",
            ),
        )
        return scope.add(
            info.label(f"{tag}first page?"),
            choice([{"Variable": "$.w.l.km", "IsPresent": True, "Next": more}], first),
        )

    def _count(self, info: StepInfo, scope: Scope, then: str) -> str:
        """A first pass counting keys and entries: over :data:`MAX_KEYS` or :data:`MAX_ENTRIES`, the
        step fails before anything is written."""
        bucket, prefix = self._where(info)[:2]
        too_many = scope.add(
            info.label("too many versions"),
            fail(
                f"s3://{bucket}/{prefix} holds more than {MAX_KEYS} keys or {MAX_ENTRIES} versions and delete "
                "markers: more than one Step Functions execution's history can restore; nothing was "
                "restored (drplan recover restores any number)"
            ),
        )
        start = scope.add(
            info.label("count: start"), pass_state({"keys": 0, "entries": 0}, "", result="$.w.l")
        )
        listing = self._list(info, scope, "count: ", "")
        scope.states[start]["Next"] = listing
        done_counting = scope.add(info.label("count: done"), pass_state({"n": 0}, then, result="$.w.l"))
        verdict = scope.add(
            info.label("count: within limits?"),
            choice(
                [
                    {"Variable": "$.w.l.keys", "NumericGreaterThan": MAX_KEYS, "Next": too_many},
                    {"Variable": "$.w.l.entries", "NumericGreaterThan": MAX_ENTRIES, "Next": too_many},
                    {"Variable": "$.w.l.km", "IsPresent": True, "Next": listing},
                ],
                done_counting,
            ),
        )
        expr = (
            "($p := $states.input.w.page; $l := $states.input.w.l; "
            "$keys := $distinct($append($append([], $p.Versions.Key), $append([], $p.DeleteMarkers.Key))); "
            "$again := $l.last in $keys ? 1 : 0; "
            "{'l': $merge([{'keys': $l.keys + $count($keys) - $again, "
            "'entries': $l.entries + $count($append([], $p.Versions)) + $count($append([], $p.DeleteMarkers))}, "
            "$p.IsTruncated ? {'km': $p.NextKeyMarker, 'vm': $p.NextVersionIdMarker, 'last': $p.NextKeyMarker} : {}])})"
        )
        counted = scope.add(info.label("count: page"), _jsonata_pass(_drop_page(expr), verdict))
        for name in (listing,):
            _point_lists_to(scope, name, counted)
        return start

    def _restore(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The pages: each decided in JSONata, its keys done by a Map; counts at ``$.w.n``."""
        start = scope.add(
            info.label("restore: start"),
            pass_state({"restored": 0, "deleted": 0, "unchanged": 0}, "", result="$.w.n"),
        )
        listing = self._list(info, scope, "", "")
        scope.states[start]["Next"] = listing
        more = scope.add(
            info.label("more pages?"),
            choice([{"Variable": "$.w.l.km", "IsPresent": True, "Next": listing}], then),
        )
        tally = scope.add(
            info.label("count keys"),
            _jsonata_pass(
                "{% ($d := $append([], $states.input.w.done); $n := $states.input.w.n; "
                "$merge([$states.input, {'w': $merge([$sift($states.input.w, function($v, $k) "
                "{$not($k in ['items', 'done'])}), {'n': {"
                "'restored': $n.restored + $count($filter($d, function($x) { $x = 'r' })), "
                "'deleted': $n.deleted + $count($filter($d, function($x) { $x = 'd' })), "
                "'unchanged': $n.unchanged + $count($filter($d, function($x) { $x = 'u' }))}}])}])) %}",
                more,
            ),
        )
        keys = scope.add(
            info.label("restore keys"),
            {
                "Type": "Map",
                "ItemsPath": "$.w.items",
                "MaxConcurrency": 1,
                "ItemProcessor": self._key(info),
                "ResultPath": "$.w.done",
                "Next": tally,
            },
        )
        decided = scope.add(info.label("decide page"), _jsonata_pass(_drop_page(self._decide(info)), keys))
        _point_lists_to(scope, listing, decided)
        return start

    def _decide(self, info: StepInfo) -> str:
        """JSONata: the page's complete keys decided (``items``), the last key carried (``pend``)."""
        bucket, prefix, _, target_prefix = self._where(info)
        in_place = self._in_place(info)
        from drplan.actions.s3.restore import KEEP_CLASS

        keep = "[" + ", ".join(jsonata_text(c) for c in KEEP_CLASS) + "]"
        tk = (
            "$k"
            if target_prefix == prefix
            else f"{jsonata_text(target_prefix)} & $substring($k, {len(prefix)})"
        )
        src = jsonata_text(bucket + "/") + " & $join($map($split($k, '/'), $encodeUrlComponent), '/')"
        # Entries: r (0: the current one), ms (time), m (1: delete marker), o (list order).
        entry = (
            "{'Key': $e.Key, 'VersionId': $e.VersionId, 'r': $e.IsLatest ? 0 : 1, "
            "'ms': $toMillis($e.LastModified), 'm': $m, 'o': $base + $i, 'ETag': $e.ETag, 'Size': $e.Size, "
            "'StorageClass': $e.StorageClass}"
        )
        decide_in_place = (
            "($w = null ? ($latest.m = 1 ? 'u' : 'd') : "
            "(($latest.m = 0 and ($latest.VersionId = $w.VersionId or "
            "($latest.ETag and $latest.ETag = $w.ETag and $latest.Size = $w.Size))) ? 'u' : 'r'))"
        )
        decide_other = "($made ? ($w = null ? 'u' : 'r') : 'h')"
        return (
            "($in := $states.input; $p := $in.w.page; $l := $in.w.l; $at := $in.w.at; $made := $in.w.made.v = true; "
            "$base := ($l.n ? $l.n : 0) * 100000; "
            f"$mk := function($list, $m) {{ $map($append([], $list), function($e, $i) {{ {entry} }}) }}; "
            "$all := $append($append($append([], $l.pend), $mk($p.Versions, 0)), $mk($p.DeleteMarkers, 1)); "
            "$lt := function($x, $y) { $x.r < $y.r or ($x.r = $y.r and ($x.ms > $y.ms or ($x.ms = $y.ms and "
            "($x.m < $y.m or ($x.m = $y.m and $x.o < $y.o))))) }; "
            "$min := function($es) { $count($es) = 0 ? null : $reduce($es, function($a, $b) { $lt($b, $a) ? $b : $a }) }; "
            "$keys := $sort($distinct($append([], $all.Key))); "
            "$last := $p.IsTruncated ? $p.NextKeyMarker : null; "
            "$sum := function($k) { ($es := $append([], $all[Key = $k]); "
            "$latest := $min($es); $then := $min($append([], $es[ms <= $at])); "
            "$append([$latest], $then ? [$then] : [])) }; "
            "$item := function($k) { ($s := $sum($k); $latest := $s[0]; $then := $s[1]; "
            "$w := ($then and $then.m = 0) ? $then : null; "
            f"$what := {decide_in_place if in_place else decide_other}; "
            f"$merge([{{'k': $k, 'tk': {tk}, 'tb': $in.w.tb, 'what': $what}}, "
            "$w ? {'vid': $w.VersionId, 'etag': $w.ETag, 'size': $w.Size, 'sclass': $w.StorageClass, "
            f"'src': {src} & '?versionId=' & $encodeUrlComponent($w.VersionId), "
            "'big': $w.Size > " + str(COPY_LIMIT) + "} : {}, "
            f"($w and $w.StorageClass in {keep}) ? {{'keep': $w.StorageClass}} : {{}}]) ) }}; "
            "$done := $filter($keys, function($x) { $x != $last }); "
            "{'l': $merge([{'n': ($l.n ? $l.n : 0) + 1}, $last != null ? {'km': $p.NextKeyMarker, "
            "'vm': $p.NextVersionIdMarker, 'pend': $sum($last)} : {}]), "
            "'items': $append([], $map($done, $item))})"
        )

    def _in_place(self, info: StepInfo) -> bool:
        bucket, prefix, target, target_prefix = self._where(info)
        return (target, target_prefix) == (bucket, prefix)

    def _key(self, info: StepInfo) -> dict[str, Any]:
        """One key of the page (the Map's item processor): its result ``r``, ``d`` or ``u``."""
        from drplan.stepfunctions.builder import Names, machine

        body = Scope(Names())
        err = "$.error"
        restored = body.add("restored", {"Type": "Pass", "Result": "r", "End": True})
        deleted = body.add("deleted", {"Type": "Pass", "Result": "d", "End": True})
        unchanged = body.add("unchanged", {"Type": "Pass", "Result": "u", "End": True})
        archived = body.add(
            "archived",
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% 'version ' & $states.input.vid & ' of ' & $states.input.k & ' is archived (' & "
                "$string($states.input.sclass) & '); restore it from Glacier first' %}",
            },
        )
        vanished = body.add(
            "vanished",
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% 'version ' & $states.input.vid & ' of ' & $states.input.k & "
                "' vanished during the restore' %}",
            },
        )
        too_big = body.add(
            "over 5 GiB",
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% 'version ' & $states.input.vid & ' of ' & $states.input.k & ' is over 5 GiB: "
                "the exported state machine copies with CopyObject, up to 5 GiB (drplan recover copies it "
                "in parts); nothing more was restored' %}",
            },
        )
        copy_failed = body.add(
            "copy error?",
            choice(
                [
                    {
                        **_is(
                            {
                                "Or": [
                                    {"Variable": f"{err}.Cause", "StringMatches": "*storage class*"},
                                    {"Variable": f"{err}.Cause", "StringMatches": "*active tier*"},
                                ]
                            },
                            ["S3.InvalidObjectStateException", "S3.ObjectNotInActiveTierErrorException"],
                            err,
                        ),
                        "Next": archived,
                    },
                    {
                        **_is(_status(404, err), ["S3.NoSuchVersionException", "S3.NoSuchKeyException"], err),
                        "Next": vanished,
                    },
                ],
                body.add("copy error", _reraise(err)),
            ),
        )
        call = {"Bucket": Path("$.tb"), "Key": Path("$.tk"), "CopySource": Path("$.src")}
        keep = body.add(
            "copy (storage class)",
            _s3(
                "copyObject", {**call, "StorageClass": Path("$.keep")}, restored, catch=copy_failed, error=err
            ),
        )
        plain = body.add("copy", _s3("copyObject", call, restored, catch=copy_failed, error=err))
        copy = body.add(
            "copy how?",
            choice(
                [
                    {"Variable": "$.big", "BooleanEquals": True, "Next": too_big},
                    {"Variable": "$.keep", "IsPresent": True, "Next": keep},
                ],
                plain,
            ),
        )
        delete = body.add(
            "delete", _s3("deleteObject", {"Bucket": Path("$.tb"), "Key": Path("$.tk")}, deleted)
        )
        # An existing target: its current object at the key (absent, or a delete marker: none).
        absent = body.add(
            "absent in target",
            choice([{"Variable": "$.vid", "IsPresent": True, "Next": copy}], unchanged),
        )
        present = body.add(
            "same content?",
            choice(
                [
                    {"Variable": "$.vid", "IsPresent": False, "Next": delete},
                    {
                        "And": [
                            {"Variable": "$.cur.ETag", "IsPresent": True},
                            {"Variable": "$.cur.ETag", "StringEqualsPath": "$.etag"},
                            {"Variable": "$.cur.Size", "NumericEqualsPath": "$.size"},
                        ],
                        "Next": unchanged,
                    },
                ],
                copy,
            ),
        )
        head_failed = body.add(
            "head error?",
            choice(
                [
                    {
                        **_is({"Or": [_status(404, err), _status(405, err)]}, ["S3.NoSuchKeyException"], err),
                        "Next": absent,
                    }
                ],
                body.add("head error", _reraise(err)),
            ),
        )
        head = body.add(
            "head target",
            _s3(
                "headObject",
                {"Bucket": Path("$.tb"), "Key": Path("$.tk")},
                present,
                result="$.cur",
                selector={"ETag": Path("$.ETag"), "Size": Path("$.ContentLength")},
                catch=head_failed,
                error=err,
            ),
        )
        start = body.add(
            "what?",
            choice(
                [
                    {"Variable": "$.what", "StringEquals": "r", "Next": copy},
                    {"Variable": "$.what", "StringEquals": "d", "Next": delete},
                    {"Variable": "$.what", "StringEquals": "h", "Next": head},
                ],
                unchanged,
            ),
        )
        return {"ProcessorConfig": {"Mode": "INLINE"}, **machine(body, start)}

    # --- undo -------------------------------------------------------------------------------------

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """A bucket the step made: emptied and deleted until gone. Anything else: nothing to do when
        the step wrote nothing, else a failure saying what is left (see the module's docstring)."""
        bucket, prefix, target, _ = self._where(info)
        gone = done(scope, info)
        if target == bucket:
            nothing = self._nothing_written(info, scope, gone)
            return scope.add(
                info.label("undo: where"), pass_state({"tb": info.v(target)}, nothing, result="$.w")
            )
        remove = self._remove(info, scope, gone)
        other = scope.add(
            info.label("undo: bucket of another run"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% 'bucket ' & $states.input.w.tb & ' now belongs to drplan run ' & "
                "$states.input.w.ttags.TagSet[Key = 'drplan:run-id'].Value & '; not deleting it' %}",
            },
        )
        run_tag = "$states.input.w.ttags.TagSet[Key = 'drplan:run-id'].Value"
        if RUN_ID_MARKER in target:
            # A drill's bucket (its name holds the run id): the step's own unless another run tagged it.
            rules = [
                {
                    "Condition": "{% " + f"$exists({run_tag}) and {run_tag} != $states.input.run.id" + " %}",
                    "Next": other,
                }
            ]
            default = remove
        else:
            rules = [
                {
                    "Condition": "{% "
                    + f"{run_tag} = $states.input.run.id and "
                    + f"$states.input.w.ttags.TagSet[Key = 'drplan:step'].Value = {jsonata_text(info.key)}"
                    + " %}",
                    "Next": remove,
                }
            ]
            default = self._nothing_written(info, scope, gone)
        mine = scope.add(
            info.label("undo: ours?"),
            {"Type": "Choice", "QueryLanguage": "JSONata", "Choices": rules, "Default": default},
        )
        untagged = scope.add(
            info.label("undo: no tags"), pass_state({"TagSet": []}, mine, result="$.w.ttags")
        )
        tag_failed = scope.add(
            info.label("undo: tags error?"),
            choice(
                [
                    {"Variable": "$.w.error.Cause", "StringMatches": "*bucket does not exist*", "Next": gone},
                    {**_status(404), "Next": untagged},
                ],
                scope.add(info.label("undo: tags error"), _reraise()),
            ),
        )
        tags = scope.add(
            info.label("undo: bucket tags"),
            _s3("getBucketTagging", {"Bucket": Path("$.w.tb")}, mine, result="$.w.ttags", catch=tag_failed),
        )
        exists_failed = scope.add(
            info.label("undo: bucket error?"),
            choice(
                [{**_is(_status(404), ["S3.NoSuchBucketException"]), "Next": gone}],
                scope.add(info.label("undo: bucket error"), _reraise()),
            ),
        )
        exists = scope.add(
            info.label("undo: bucket there?"),
            _s3("getBucketVersioning", {"Bucket": Path("$.w.tb")}, tags, result=None, catch=exists_failed),
        )
        del prefix
        return scope.add(info.label("undo: where"), pass_state({"tb": info.v(target)}, exists, result="$.w"))

    def _nothing_written(self, info: StepInfo, scope: Scope, gone: str) -> str:
        """Done when the step's record counts nothing written, else a failure saying what is left."""
        target_prefix = self._where(info)[3]
        sid = info.sid
        unknown = scope.add(
            info.label("undo: versions written unknown"),
            fail(
                Path(
                    "States.Format('the versions and delete markers this step wrote in s3://{}/"
                    + target_prefix.replace("'", "").replace("{", "").replace("}", "")
                    + " are not kept by the state machine: remove them by hand', $.w.tb)"
                )
            ),
        )
        nothing = scope.add(
            info.label("undo: anything written?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": f"$.s.{sid}.out.restored", "IsPresent": True},
                            {"Variable": f"$.s.{sid}.out.restored", "NumericEquals": 0},
                            {"Variable": f"$.s.{sid}.out.deleted", "NumericEquals": 0},
                        ],
                        "Next": gone,
                    }
                ],
                unknown,
            ),
        )
        return nothing

    def _remove(self, info: StepInfo, scope: Scope, gone: str) -> str:
        """``remove_bucket`` then ``poll_undo``: every version and marker deleted, uploads aborted,
        the bucket deleted, looked at until it is gone."""
        check = scope.reserve(info.label("undo: bucket still there?"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "bucket deletion")
        listing = scope.reserve(info.label("undo: list versions"))
        gone_or_error = scope.add(
            info.label("undo: deleted?"),
            choice(
                [{**_is(_status(404), ["S3.NoSuchBucketException"]), "Next": gone}],
                scope.add(info.label("undo: look error"), _reraise()),
            ),
        )
        scope.put(
            check,
            _s3("getBucketVersioning", {"Bucket": Path("$.w.tb")}, listing, result=None, catch=gone_or_error),
        )
        delete_failed = scope.add(
            info.label("undo: delete bucket error?"),
            choice(
                [
                    {**_is(_status(404), ["S3.NoSuchBucketException"]), "Next": gone},
                    {**_status(409), "Next": wait},  # BucketNotEmpty: a late write; emptied again
                ],
                scope.add(info.label("undo: delete bucket error"), _reraise()),
            ),
        )
        delete_bucket = scope.add(
            info.label("undo: delete bucket"),
            _s3("deleteBucket", {"Bucket": Path("$.w.tb")}, wait, catch=delete_failed),
        )
        abort = scope.add(
            info.label("undo: abort uploads"),
            {
                "Type": "Map",
                "ItemsPath": "$.w.ups",
                "MaxConcurrency": 1,
                "ItemSelector": {"tb.$": "$.w.tb", "u.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "abort upload",
                    "States": {
                        "abort upload": _s3(
                            "abortMultipartUpload",
                            {
                                "Bucket": Path("$.tb"),
                                "Key": Path("$.u.Key"),
                                "UploadId": Path("$.u.UploadId"),
                            },
                            None,
                        )
                    },
                },
                "ResultPath": None,
                "Next": delete_bucket,
            },
        )
        uploads_left = scope.add(
            info.label("undo: uploads?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [{"Condition": "{% $count($states.input.w.ups) > 0 %}", "Next": abort}],
                "Default": delete_bucket,
            },
        )
        uploads = scope.add(
            info.label("undo: list uploads"),
            {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": "arn:aws:states:::aws-sdk:s3:listMultipartUploads",
                "Arguments": {"Bucket": "{% $states.input.w.tb %}"},
                "Output": jsonata_set(
                    "ups", "$append([], $states.result.Uploads.{'Key': Key, 'UploadId': UploadId})"
                ),
                "Retry": [{"ErrorEquals": TRANSIENT, **THROTTLE_RETRY}],
                "Next": uploads_left,
            },
        )
        batch_failed = scope.add(
            info.label("undo: versions not deleted"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% ($e := $states.input.w.errs; 'cannot delete ' & $string($count($e)) & "
                "' versions in ' & $states.input.w.tb & ': ' & $e[0].Code & ' ' & "
                "($e[0].Message ? $e[0].Message : '')) %}",
            },
        )
        errors = scope.add(
            info.label("undo: deleted them?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [{"Condition": "{% $count($states.input.w.errs) > 0 %}", "Next": batch_failed}],
                "Default": listing,
            },
        )
        delete = scope.add(
            info.label("undo: delete versions"),
            {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": "arn:aws:states:::aws-sdk:s3:deleteObjects",
                "Arguments": {
                    "Bucket": "{% $states.input.w.tb %}",
                    "Delete": {"Objects": "{% $states.input.w.objs %}", "Quiet": True},
                },
                "Output": jsonata_set(
                    "errs",
                    "$append([], $states.result.Errors[$not(Code in ['NoSuchVersion', 'NoSuchKey'])])",
                ),
                "Retry": [{"ErrorEquals": TRANSIENT, **THROTTLE_RETRY}],
                "Next": errors,
            },
        )
        anything = scope.add(
            info.label("undo: any versions?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [{"Condition": "{% $count($states.input.w.objs) > 0 %}", "Next": delete}],
                "Default": uploads,
            },
        )
        scope.put(
            listing,
            {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": "arn:aws:states:::aws-sdk:s3:listObjectVersions",
                "Arguments": {"Bucket": "{% $states.input.w.tb %}", "MaxKeys": UNDO_PAGE},
                "Output": jsonata_set(
                    "objs",
                    "$append($append([], $states.result.Versions.{'Key': Key, 'VersionId': VersionId}), "
                    "$append([], $states.result.DeleteMarkers.{'Key': Key, 'VersionId': VersionId}))",
                ),
                "Retry": [{"ErrorEquals": TRANSIENT, **THROTTLE_RETRY}],
                "Catch": [{"ErrorEquals": S3_ERRORS, "Output": "{% $states.input %}", "Next": check}],
                "Next": anything,
            },
        )
        return start


def _drop_page(expr: str) -> str:
    """JSONata ``Output``: the input without ``w.page``, with ``w`` merged with ``expr``'s object."""
    return (
        "{% ($r := "
        + expr
        + "; $merge([$states.input, {'w': $merge([$sift($states.input.w, function($v, $k) {$k != 'page'}), "
        + "$r])}])) %}"
    )


def _point_lists_to(scope: Scope, first: str, then: str) -> None:
    """The list Tasks behind the Choice ``first`` go on to ``then``."""
    for name in scope.states[first]["Choices"][0]["Next"], scope.states[first]["Default"]:
        scope.states[name]["Next"] = then
