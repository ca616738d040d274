"""AWS Lambda: invoke a function as a custom step (the package is not called ``lambda``, a Python
keyword)."""

from drplan.actions.awslambda.invoke import Invoke

ACTIONS = (Invoke,)
