"""Business metrics through Powertools (CloudWatch embedded metric format). Customer ids are
never metric dimensions (cost); they go in logs."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit


class PowertoolsMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str, value: float = 1, unit: str = "Count") -> None:
        self._metrics.add_metric(name=name, unit=MetricUnit(unit), value=value)
