"""Amazon RDS and Aurora: restore DB instances and clusters from snapshots or a point in time.

:mod:`.restore` holds the actions, :mod:`.base` what the instance restores share, :mod:`.lookup`
how RDS resources are described, chosen and deleted.
"""

from drplan.actions.rds.restore import RestoreClusterSnapshot, RestorePointInTime, RestoreSnapshot

ACTIONS = (RestoreSnapshot, RestorePointInTime, RestoreClusterSnapshot)
