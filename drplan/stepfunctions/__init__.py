"""Run a plan on AWS Step Functions: ``drplan export stepfunctions``, ``drplan deploy``, ``drplan start``
(docs/stepfunctions.md).

- :mod:`~drplan.stepfunctions.export`: the plan, prepared as a local run prepares it, into the
  three files (definition, role policy, CloudFormation template); refuses what it cannot translate;
- :mod:`~drplan.stepfunctions.asl`: the graph encoding (series-parallel nesting, coordination
  records where the graph is not series-parallel), the step wrapper (skip, retries, timeout) and
  the semaphores that enforce ``run.parallelism`` and per-action limits;
- :mod:`~drplan.stepfunctions.definition`: the whole machine (run id, steps, drill cleanup, verdict);
- :mod:`~drplan.stepfunctions.tasks`: one translation per action, through ``aws-sdk:`` integrations;
  :mod:`~drplan.stepfunctions.approval`: manual steps, an approval through a task token (SNS);
  :mod:`~drplan.stepfunctions.invoke`: Lambda functions, through Step Functions' Lambda integration;
  :mod:`~drplan.stepfunctions.translations`: the registry of them;
- :mod:`~drplan.stepfunctions.builder`: state names, scopes and parameter values;
- :mod:`~drplan.stepfunctions.iam` and :mod:`~drplan.stepfunctions.template`: the role's policy and
  the CloudFormation template;
- :mod:`~drplan.stepfunctions.deploy`: the template as a CloudFormation stack (``drplan deploy``);
- :mod:`~drplan.stepfunctions.history` and :mod:`~drplan.stepfunctions.follow`: an execution
  started and followed (``drplan start --engine stepfunctions``), its history projected onto
  drplan's run events, journal and evidence;
- :mod:`~drplan.stepfunctions.approve`: a waiting approval answered (``drplan approve``).
"""

from drplan.stepfunctions.builder import Untranslatable
from drplan.stepfunctions.export import Exported, ExportRefused, export_plan

__all__ = ["ExportRefused", "Exported", "Untranslatable", "export_plan"]
