"""Amazon RDS and Aurora: restore DB instances and clusters from snapshots or a point in time, and
in a Region failover promote a read replica or move an Aurora global database's primary.

:mod:`.restore` holds the restores, :mod:`.promote` the promotion, :mod:`.global_cluster` the
global database switchover and failover, :mod:`.base` what the instance restores share,
:mod:`.lookup` how RDS resources are described, chosen and deleted.
"""

from drplan.actions.rds.global_cluster import FailoverGlobalCluster, SwitchoverGlobalCluster
from drplan.actions.rds.promote import PromoteReadReplica
from drplan.actions.rds.restore import RestoreClusterSnapshot, RestorePointInTime, RestoreSnapshot

ACTIONS = (
    RestoreSnapshot,
    RestorePointInTime,
    RestoreClusterSnapshot,
    PromoteReadReplica,
    SwitchoverGlobalCluster,
    FailoverGlobalCluster,
)
