"""Amazon EC2 Auto Scaling: set a group's capacity (scale the application tier back up)."""

from drplan.actions.autoscaling.capacity import SetCapacity

ACTIONS = (SetCapacity,)
