"""Amazon EC2 / EBS: create volumes from snapshots."""

from drplan.actions.ec2.volume import VolumeFromSnapshot

ACTIONS = (VolumeFromSnapshot,)
