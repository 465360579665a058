"""What a metric declares about itself (one :class:`MetricSpec` per metric module)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Resample = Callable[[np.ndarray, list, list], np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """A metric's name and behaviour, declared once beside its ``evaluate.Metric`` module.

    ``resample`` computes the metric under bootstrap weights ([B, n] counts of each row
    per resample) from predictions and references. Without it the metric is the mean of
    per-row scores, which its module returns as ``<name>_per_example``.
    """

    name: str
    answers: tuple[str, ...]  # the answer kinds it judges (problems.ANSWER_KINDS: labels, text, number)
    description: str
    default_for: tuple[str, ...] = ()  # the answer kinds whose gate uses it when gate.metric is not set
    higher_is_better: bool = True  # the gate compares higher-is-better metrics only
    resample: Resample | None = None

    @property
    def gate(self) -> bool:
        """Whether it can be the gate metric (the gate's deltas and CIs assume higher is better)."""
        return self.higher_is_better
