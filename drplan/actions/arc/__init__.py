"""Amazon Route 53 Application Recovery Controller (ARC): set routing controls."""

from drplan.actions.arc.routing_control import SetRoutingControl

ACTIONS = (SetRoutingControl,)
