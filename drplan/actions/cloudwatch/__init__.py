"""Amazon CloudWatch: check that an alarm has been in the expected state for a while."""

from drplan.actions.cloudwatch.alarm import AlarmCheck

ACTIONS = (AlarmCheck,)
