"""A CloudFormation template with the ``AWS::ARCRegionSwitch::Plan`` resource of the request.

CloudFormation's properties are the API's members with a capital first letter
(``executionBlockConfiguration`` -> ``ExecutionBlockConfiguration``); the keys of maps (Regions,
tags) stay as they are. The conversion walks the request along botocore's input shape, so it knows
which objects are structures and which are maps. ``cfn-lint`` checks the result against the
resource's published schema (tests/test_arc_export.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drplan.arcswitch.request import input_shape
from drplan.model import Plan


def build_template(plan: Plan, request: Mapping[str, Any]) -> dict[str, Any]:
    shape = input_shape()
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"drplan: plan {plan.name} as an ARC Region switch plan (drplan export arc-region-switch)",
        "Resources": {"Plan": {"Type": "AWS::ARCRegionSwitch::Plan", "Properties": _cfn(request, shape)}},
        "Outputs": {
            "PlanArn": {"Description": "The ARC Region switch plan", "Value": {"Fn::GetAtt": ["Plan", "Arn"]}}
        },
    }


def _cfn(value: Any, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, Mapping):
        return {
            name[:1].upper() + name[1:]: _cfn(value[name], member)
            for name, member in shape.members.items()
            if name in value
        }
    if kind == "map" and isinstance(value, Mapping):
        return {key: _cfn(item, shape.value) for key, item in value.items()}
    if kind == "list" and isinstance(value, list):
        return [_cfn(item, shape.member) for item in value]
    return value
