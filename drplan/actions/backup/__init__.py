"""AWS Backup: restore a resource from a recovery point.

:mod:`.restore` holds the action, :mod:`.targets` what it knows of each resource type it restores.
"""

from drplan.actions.backup.restore import BackupRestore

ACTIONS = (BackupRestore,)
