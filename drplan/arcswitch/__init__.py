"""Export a plan's recovery to AWS ARC Region switch: ``drplan export arc-region-switch``
(docs/arc-region-switch.md).

- :mod:`~drplan.arcswitch.settings`: what ARC needs that a plan does not say (role, Regions, approach, ARNs);
- :mod:`~drplan.arcswitch.blocks`: one step as one execution block where the meanings match, or why not
  (:mod:`~drplan.arcswitch.context`: the step's Region, account and the refusals they share);
- :mod:`~drplan.arcswitch.structure`: the graph as ARC's stages (sequence of Parallel blocks), and its cost;
- :mod:`~drplan.arcswitch.alarms`: the alarms of ``check.cloudwatch_alarm`` steps as application health alarms;
- :mod:`~drplan.arcswitch.request`: the ``CreatePlan`` request (recovery and failback workflows), validated
  against botocore's model;
- :mod:`~drplan.arcswitch.template`: the CloudFormation ``AWS::ARCRegionSwitch::Plan`` resource;
- :mod:`~drplan.arcswitch.report` and :mod:`~drplan.arcswitch.export`: the report and the whole export.
"""

from drplan.arcswitch.export import ArcExport, InvalidRequest, NothingToExport, export_plan
from drplan.arcswitch.settings import Settings, settings

__all__ = ["ArcExport", "InvalidRequest", "NothingToExport", "Settings", "export_plan", "settings"]
