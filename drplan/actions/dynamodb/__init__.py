"""Amazon DynamoDB: restore tables from on-demand backups or point-in-time recovery."""

from drplan.actions.dynamodb.restore import RestoreBackup, RestorePointInTime

ACTIONS = (RestoreBackup, RestorePointInTime)
