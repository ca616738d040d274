"""Amazon RDS and Aurora: restore DB instances and clusters from snapshots or a point in time, and
promote a read replica in a Region failover.

:mod:`.restore` holds the restores, :mod:`.promote` the promotion, :mod:`.base` what the instance
restores share, :mod:`.lookup` how RDS resources are described, chosen and deleted.
"""

from drplan.actions.rds.promote import PromoteReadReplica
from drplan.actions.rds.restore import RestoreClusterSnapshot, RestorePointInTime, RestoreSnapshot

ACTIONS = (RestoreSnapshot, RestorePointInTime, RestoreClusterSnapshot, PromoteReadReplica)
