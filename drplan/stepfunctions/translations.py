"""Every action the exporter translates, by name: the registry the exporter, the role's policy and
the history's projection look translations up in."""

from __future__ import annotations

from drplan.stepfunctions.approval import ManualApproval
from drplan.stepfunctions.arc import ArcSetRoutingControl
from drplan.stepfunctions.autoscaling import AutoScalingSetCapacity
from drplan.stepfunctions.backup import BackupRestore
from drplan.stepfunctions.checks import HttpCheckTranslation, TcpCheckTranslation
from drplan.stepfunctions.cloudwatch import AlarmCheckTranslation
from drplan.stepfunctions.dynamodb import DynamoRestoreBackup, DynamoRestorePointInTime
from drplan.stepfunctions.ec2 import Ec2VolumeFromSnapshot
from drplan.stepfunctions.ecs import EcsSetCapacity
from drplan.stepfunctions.eks import EksScaleNodegroup
from drplan.stepfunctions.health import HealthCheckTranslation
from drplan.stepfunctions.invoke import LambdaInvoke
from drplan.stepfunctions.rds import RdsRestorePointInTime, RdsRestoreSnapshot
from drplan.stepfunctions.rds_cluster import RdsRestoreClusterSnapshot
from drplan.stepfunctions.rds_global import (
    RdsFailoverGlobalCluster,
    RdsPromoteReadReplica,
    RdsSwitchoverGlobalCluster,
)
from drplan.stepfunctions.route53 import Route53ChangeRecord
from drplan.stepfunctions.s3 import S3RestoreVersions
from drplan.stepfunctions.tasks import Translation, WaitStep

TRANSLATIONS: dict[str, Translation] = {
    t.action: t
    for t in (
        WaitStep(),
        DynamoRestoreBackup(),
        DynamoRestorePointInTime(),
        RdsRestoreSnapshot(),
        RdsRestorePointInTime(),
        RdsRestoreClusterSnapshot(),
        RdsPromoteReadReplica(),
        RdsFailoverGlobalCluster(),
        RdsSwitchoverGlobalCluster(),
        Route53ChangeRecord(),
        ArcSetRoutingControl(),
        ManualApproval(),
        LambdaInvoke(),
        EcsSetCapacity(),
        AutoScalingSetCapacity(),
        EksScaleNodegroup(),
        Ec2VolumeFromSnapshot(),
        S3RestoreVersions(),
        BackupRestore(),
        HttpCheckTranslation(),
        TcpCheckTranslation(),
        AlarmCheckTranslation(),
        HealthCheckTranslation(),
    )
}
