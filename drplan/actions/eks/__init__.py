"""Amazon EKS: set a managed node group's sizes (scale the cluster's nodes up)."""

from drplan.actions.eks.nodegroup import ScaleNodegroup

ACTIONS = (ScaleNodegroup,)
