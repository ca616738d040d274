"""The calls function: one AWS API call in another Region (or as a role whose trust policy wants an
external ID), for a state machine whose ``aws-sdk:`` tasks reach only its own Region.

This module is the function's whole code: the template puts it inline (``index.py``), so it
imports nothing but the standard library, boto3 and botocore (Lambda's Python runtime has them).

The state machine invokes it with ``{"service", "action", "region", "role", "external_id",
"parameters"}``: the ``aws-sdk:SERVICE:ACTION`` task it stands for, its ``Parameters`` in Step
Functions' spelling (``DbInstanceIdentifier``). It answers as that task would have: the response in
Step Functions' spelling, timestamps as ISO 8601 text, and an error under the name Step Functions
gives an ``aws-sdk`` error (``Rds.DbInstanceNotFoundException``, ``Ec2.Ec2Exception``) with the
same cause text, so the task's ``Retry`` and ``Catch`` match as before. Lambda reports an
exception's class name as the error's name, so each error is raised as a class of that name.

A call to Route 53 ARC's cluster API also carries ``"endpoints"``: the cluster's endpoints
(``{"region", "endpoint"}``), which are the only places that API answers. They are tried in turn,
as ARC advises and as drplan's own step does: an endpoint that is unavailable, throttling, failing
inside or unreachable (a connection that fails, not a request botocore refuses) is passed over for
the next one; the last one's error is raised when none
answers. A warm function starts at the endpoint that answered last.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import time
from typing import Any

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

#: One attempt per invocation: the task's Retry (the local engine's backoff) does the retrying, as
#: it does for the aws-sdk integration.
_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=60)
#: One endpoint of several: short enough that five endpoints fit in the function's two minutes.
_ENDPOINT_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15
)
#: ARC's errors after which another cluster endpoint may answer ("try another cluster endpoint").
_TRY_ANOTHER = frozenset(
    {"EndpointTemporarilyUnavailableException", "InternalServerException", "ThrottlingException"}
)
#: botocore's errors after which another endpoint may answer: it could not be reached (a copy of
#: ``drplan.aws.UNREACHABLE_EXCEPTIONS``) ...
_UNREACHABLE = frozenset({"EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"})
#: ... and those of a call that may succeed when made again (``drplan.aws.TRANSIENT_EXCEPTIONS``):
#: raised as ``SdkClientException``, which the tasks retry where the local engine would. Any other
#: error of the request itself (parameters botocore refuses, no credentials) is not worth another
#: endpoint or another try: ``InvalidRequestException``.
_TRANSIENT = frozenset({*_UNREACHABLE, "ReadTimeoutError", "ResponseStreamingError"})
#: Per list of endpoints, the index of the one that answered last.
_ANSWERED: dict[tuple[str, ...], int] = {}
_WORD = re.compile(r"((?<=[a-z0-9])[A-Z]|(?!^)[A-Z](?=[a-z]))")
_ERRORS: dict[str, type[Exception]] = {}
_ROLES: dict[tuple[str, str], tuple[float, dict[str, str]]] = {}


def sfn_cased(name: str) -> str:
    """Step Functions' spelling of an API name, word by word: ``DBInstanceIdentifier`` is
    ``DbInstanceIdentifier``, ``TTL`` is ``Ttl``."""
    snake = _WORD.sub(r"_\1", name).replace("__", "_").lower()
    return "".join(word.title() for word in snake.split("_"))


def service_prefix(service_id: str) -> str:
    """The service as Step Functions names it in errors: ``DynamoDb``, ``Rds``, ``Route53``."""
    return "".join(sfn_cased(word) for word in service_id.split())


def error_class(name: str) -> type[Exception]:
    """An exception class named ``name`` (dots and all): Lambda reports it as the error's name."""
    if name not in _ERRORS:
        _ERRORS[name] = type(name, (Exception,), {})
    return _ERRORS[name]


def error_name(model: Any, code: str) -> str:
    """The name Step Functions gives the error ``code`` of ``model``'s service: the modeled error's
    shape as the AWS SDK for Java names it (``Fault`` becomes ``Exception``, ``Exception`` added
    when missing, word by word), or the service's generic one when the model does not declare it."""
    prefix = service_prefix(model.service_id)
    for shape in model.error_shapes:
        shape_name = shape.name
        if code in (shape_name, shape.error_code):
            base = shape_name
            if base.endswith("Fault"):
                base = base[: -len("Fault")] + "Exception"
            elif not base.endswith("Exception"):
                base += "Exception"
            return f"{prefix}.{sfn_cased(base)}"
    return f"{prefix}.{prefix}Exception"


def to_request(value: Any, shape: Any) -> Any:
    """Step Functions' parameters as the API takes them: its member names, strings for string
    fields given JSON (as Step Functions serialises them), bytes for blobs."""
    if shape is None:
        return value
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = {sfn_cased(name): name for name in shape.members}
        out = {}
        for key, item in value.items():
            name = members.get(key, key)
            out[name] = to_request(item, shape.members.get(name))
        return out
    if kind == "list" and isinstance(value, list):
        return [to_request(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: to_request(item, shape.value) for key, item in value.items()}
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value)
    if kind == "blob" and not isinstance(value, bytes):
        return (value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))).encode()
    return value


def instant(moment: datetime.datetime) -> str:
    """A timestamp as Step Functions writes one: UTC, ISO 8601, fractions only when there are some."""
    utc = moment.astimezone(datetime.timezone.utc) if moment.tzinfo else moment
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    micro = utc.microsecond
    if micro:
        text += "." + (f"{micro // 1000:03d}" if micro % 1000 == 0 else f"{micro:06d}")
    return text + "Z"


def to_response(value: Any, shape: Any) -> Any:
    """The API's answer as Step Functions hands it on: its spelling, JSON values only."""
    if isinstance(value, datetime.datetime):
        return instant(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "read"):  # a streaming body: its text
        return value.read().decode("utf-8", "replace")
    kind = shape.type_name if shape is not None else None
    if isinstance(value, dict):
        if kind == "structure":
            return {
                sfn_cased(k) if k in shape.members else k: to_response(v, shape.members.get(k))
                for k, v in value.items()
            }
        inner = shape.value if kind == "map" else None
        return {k: to_response(v, inner) for k, v in value.items()}
    if isinstance(value, list):
        return [to_response(v, shape.member if kind == "list" else None) for v in value]
    return value


def credentials(role: str, external_id: str | None) -> dict[str, str]:
    """The role's temporary credentials, kept while a warm function reuses them (renewed when
    less than five minutes are left)."""
    key = (role, external_id or "")
    cached = _ROLES.get(key)
    if cached is None or cached[0] - time.time() < 300:
        extra = {"ExternalId": external_id} if external_id else {}
        got = boto3.client("sts").assume_role(RoleArn=role, RoleSessionName="drplan-calls", **extra)
        c = got["Credentials"]
        _ROLES[key] = (
            c["Expiration"].timestamp(),
            {
                "aws_access_key_id": c["AccessKeyId"],
                "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"],
            },
        )
    return _ROLES[key][1]


def boto3_service(name: str) -> str:
    """boto3's name of the service Step Functions names ``name`` (``route53recoverycluster`` is
    ``route53-recovery-cluster``)."""
    if "-" in name:
        return name
    services = boto3.session.Session().get_available_services()
    return next((s for s in services if s.replace("-", "") == name), name)


def handler(event: dict[str, Any], context: Any) -> Any:
    service = boto3_service(event["service"])
    region = event.get("region") or os.environ.get("AWS_REGION")
    role = event.get("role")
    keys = credentials(role, event.get("external_id")) if role else {}
    endpoints = [(str(e["region"]), str(e["endpoint"])) for e in event.get("endpoints") or []]
    if not endpoints:
        client = boto3.client(service, region_name=region, config=_CONFIG, **keys)
        return _call(client, event)
    urls = tuple(url for _, url in endpoints)
    first = _ANSWERED.get(urls, 0) % len(endpoints)
    order = list(range(first, len(endpoints))) + list(range(first))
    for n, index in enumerate(order):
        where, url = endpoints[index]
        client = boto3.client(service, region_name=where, endpoint_url=url, config=_ENDPOINT_CONFIG, **keys)
        try:
            answer = _call(client, event, passes_over=n < len(order) - 1)
        except _PassOver:
            continue
        _ANSWERED[urls] = index
        return answer
    raise AssertionError("unreachable: the last endpoint's error is raised")


class _PassOver(Exception):
    """This endpoint did not answer: try the next one."""


def _call(client: Any, event: dict[str, Any], *, passes_over: bool = False) -> Any:
    """The event's call with ``client``: the answer in Step Functions' spelling, or its error under
    Step Functions' name. ``passes_over``: an endpoint that did not answer raises :class:`_PassOver`."""
    model = client.meta.service_model
    by_name = {name.lower(): name for name in model.operation_names}
    operation = model.operation_model(by_name[event["action"].lower()])
    request = to_request(event.get("parameters") or {}, operation.input_shape)
    try:
        response = getattr(client, botocore.xform_name(operation.name))(**request)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if passes_over and error.get("Code") in _TRY_ANOTHER:
            raise _PassOver() from None
        meta = exc.response.get("ResponseMetadata", {})
        cause = (
            f"{error.get('Message', str(exc))} (Service: {service_prefix(model.service_id)}, "
            f"Status Code: {meta.get('HTTPStatusCode', 0)}, Request ID: {meta.get('RequestId', '')})"
        )
        raise error_class(error_name(model, str(error.get("Code", ""))))(cause) from None
    except (BotoCoreError, ValueError, TypeError) as exc:  # the request never got an answer
        kind = type(exc).__name__
        if passes_over and kind in _UNREACHABLE:
            raise _PassOver() from None
        name = "SdkClientException" if kind in _TRANSIENT else "InvalidRequestException"
        raise error_class(f"{service_prefix(model.service_id)}.{name}")(str(exc)) from None
    response.pop("ResponseMetadata", None)
    return to_response(response, operation.output_shape)
