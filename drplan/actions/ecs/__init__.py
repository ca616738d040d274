"""Amazon ECS: set a service's desired task count (scale the application tier up)."""

from drplan.actions.ecs.capacity import SetServiceCapacity

ACTIONS = (SetServiceCapacity,)
