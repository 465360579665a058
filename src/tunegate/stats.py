"""Paired statistics on the same eval rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunegate import metrics


@dataclass(frozen=True)
class PairedDelta:
    delta: float  # metric(candidate) - metric(baseline) on all rows
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    resamples: int


def bootstrap_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] counts: how often each row is drawn in each resample (rows drawn with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def paired_bootstrap(
    metric: str,
    *,
    candidate: dict,
    baseline: dict,
    references: list,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDelta:
    """Percentile CI of metric(candidate) - metric(baseline), resampling rows jointly for both.

    ``candidate`` and ``baseline`` hold ``per_example`` (list of scores) and/or
    ``predictions`` (list of strings) for the same rows in the same order.
    """
    n = len(references)
    if n == 0:
        raise ValueError("no eval rows to compare")
    full = np.ones((1, n))
    w = bootstrap_weights(n, resamples, seed)

    def value(side: dict, weights: np.ndarray) -> np.ndarray:
        return metrics.resampled(
            metric,
            weights,
            per_example=side.get("per_example"),
            predictions=side.get("predictions"),
            references=references,
        )

    delta = float(value(candidate, full)[0] - value(baseline, full)[0])
    diffs = value(candidate, w) - value(baseline, w)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return PairedDelta(delta=delta, ci_low=float(lo), ci_high=float(hi), confidence=confidence, n=n, resamples=resamples)


def bootstrap_ci(
    metric: str, *, side: dict, references: list, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(value, ci_low, ci_high): percentile bootstrap CI of one model's metric on the eval rows."""
    n = len(references)
    if n == 0:
        raise ValueError("no eval rows")
    w = np.vstack([np.ones((1, n)), bootstrap_weights(n, resamples, seed)])
    vals = metrics.resampled(metric, w, per_example=side.get("per_example"), predictions=side.get("predictions"), references=references)
    alpha = 1.0 - confidence
    lo, hi = np.quantile(vals[1:], [alpha / 2, 1 - alpha / 2])
    return float(vals[0]), float(lo), float(hi)
