"""Amazon Route 53: point a DNS record at the restored service."""

from drplan.actions.route53.record import ChangeRecord

ACTIONS = (ChangeRecord,)
