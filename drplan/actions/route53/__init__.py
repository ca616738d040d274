"""Amazon Route 53: point a DNS record at the restored service, and check a health check."""

from drplan.actions.route53.health import HealthCheck
from drplan.actions.route53.record import ChangeRecord

ACTIONS = (ChangeRecord, HealthCheck)
