"""Paired statistics on the same eval rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunegate import metrics


@dataclass(frozen=True)
class PairedDelta:
    """A paired-bootstrap difference of one metric between two models on the same rows, with its CI."""

    delta: float  # metric(candidate) - metric(baseline) on all rows
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    resamples: int
    se: float = 0.0  # standard deviation of the resampled differences (the bootstrap standard error)


def bootstrap_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] counts: how often each row is drawn in each resample (rows drawn with replacement)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def paired_bootstrap(
    metric: str,
    *,
    candidate: dict,
    baseline: dict | list[dict],
    references: list,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDelta:
    """Percentile CI of metric(candidate) - metric(baseline), resampling rows jointly for both.

    ``candidate`` and ``baseline`` hold ``per_example`` (list of scores) and/or
    ``predictions`` (list of strings) for the same rows in the same order. A list of
    baselines is the max-statistic: each resample compares with the best of them *on that
    resample*, so the choice of the best one on these rows is redone in every resample (the
    correction when the best baseline was chosen on the rows that judge).
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

    sides = baseline if isinstance(baseline, list) else [baseline]

    def best(weights: np.ndarray) -> np.ndarray:
        return np.max(np.vstack([value(b, weights) for b in sides]), axis=0)

    delta = float(value(candidate, full)[0] - best(full)[0])
    return _percentile(delta, value(candidate, w) - best(w), confidence, n)


def seed_row_bootstrap(
    metric: str,
    *,
    seeds: list[dict],
    baseline: dict,
    references: list,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedDelta:
    """CI of (mean over training seeds of metric(seed) - metric(baseline)), resampling the seeds and the rows
    together: each resample draws k seeds with replacement and the rows with replacement (jointly for every
    side), so the interval covers both the training randomness and the sampling of the eval rows."""
    n, k = len(references), len(seeds)
    if n == 0 or k == 0:
        raise ValueError("no eval rows or no seeds to compare")
    w = np.vstack([np.ones((1, n)), bootstrap_weights(n, resamples, seed)])

    def value(side: dict) -> np.ndarray:
        return metrics.resampled(
            metric, w, per_example=side.get("per_example"), predictions=side.get("predictions"), references=references
        )

    per_seed = np.vstack([value(s) for s in seeds])  # [k, 1 + resamples]
    base = value(baseline)
    draws = np.random.default_rng(seed + 1).integers(0, k, size=(resamples, k))
    diffs = per_seed[draws, np.arange(1, resamples + 1)[:, None]].mean(axis=1) - base[1:]
    return _percentile(float(per_seed[:, 0].mean() - base[0]), diffs, confidence, n)


def _percentile(delta: float, diffs: np.ndarray, confidence: float, n: int) -> PairedDelta:
    """The percentile interval of resampled differences around the observed ``delta``."""
    alpha = 1.0 - confidence
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return PairedDelta(
        delta=delta,
        ci_low=float(lo),
        ci_high=float(hi),
        confidence=confidence,
        n=n,
        resamples=len(diffs),
        se=float(diffs.std(ddof=1)),
    )


def bootstrap_ci(
    metric: str, *, side: dict, references: list, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(value, ci_low, ci_high): percentile bootstrap CI of one model's metric on the eval rows."""
    n = len(references)
    if n == 0:
        raise ValueError("no eval rows")
    w = np.vstack([np.ones((1, n)), bootstrap_weights(n, resamples, seed)])
    vals = metrics.resampled(
        metric, w, per_example=side.get("per_example"), predictions=side.get("predictions"), references=references
    )
    alpha = 1.0 - confidence
    lo, hi = np.quantile(vals[1:], [alpha / 2, 1 - alpha / 2])
    return float(vals[0]), float(lo), float(hi)


@dataclass(frozen=True)
class McNemar:
    """McNemar's exact test on paired correctness: only the discordant rows carry evidence."""

    candidate_only: int  # rows the candidate gets right and the baseline wrong (b)
    baseline_only: int  # rows the baseline gets right and the candidate wrong (c)
    p_value: float  # exact binomial test of b out of b + c at 1/2
    alternative: str  # "two-sided" or "greater" (the candidate is better)


def mcnemar_exact(
    candidate_correct: list[bool], baseline_correct: list[bool], alternative: str = "two-sided"
) -> McNemar:
    """Exact McNemar test: under the null, each discordant row favours either side with probability 1/2."""
    from scipy.stats import binomtest

    if len(candidate_correct) != len(baseline_correct):
        raise ValueError("both sides must be scored on the same rows")
    if alternative not in ("two-sided", "greater"):
        raise ValueError("alternative is 'two-sided' or 'greater'")
    b = sum(1 for x, y in zip(candidate_correct, baseline_correct) if x and not y)
    c = sum(1 for x, y in zip(candidate_correct, baseline_correct) if y and not x)
    p = 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5, alternative=alternative).pvalue)
    return McNemar(candidate_only=b, baseline_only=c, p_value=p, alternative=alternative)


def min_detectable_difference(n: int, *, sd: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference a two-sided test at ``alpha`` detects with ``power``
    on ``n`` rows whose per-row differences have standard deviation ``sd``: (z_{1-alpha/2} + z_power) sd / sqrt(n)."""
    from scipy.stats import norm

    if n <= 0:
        raise ValueError("n must be positive")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / np.sqrt(n))


def paired_sd(candidate: list[float], baseline: list[float]) -> float:
    """Standard deviation of the per-row differences (for classification: of +1 / 0 / -1)."""
    d = np.asarray(candidate, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    return float(d.std(ddof=1)) if len(d) > 1 else 0.0


def mde_from_se(se: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The minimum detectable difference from a standard error of the difference (any metric: the bootstrap SE)."""
    from scipy.stats import norm

    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)


def rows_needed(n: int, mde: float, effect: float) -> int | None:
    """Eval rows for ``effect`` to be detectable, scaling the MDE measured on ``n`` rows by 1/sqrt(n)."""
    if effect <= 0 or mde <= 0:
        return None
    return int(np.ceil(n * (mde / effect) ** 2))


@dataclass(frozen=True)
class ConfidenceSequence:
    """An always-valid interval for a mean: it may be looked at after every new row (and acted on the first time
    it excludes a value) with the error rate still at most ``alpha``, unlike a fixed-n interval."""

    mean: float
    low: float
    high: float
    n: int
    alpha: float


def confidence_sequence(
    values: list[float], *, alpha: float = 0.05, planned_n: int = 500, bounds: tuple[float, float] | None = None
) -> ConfidenceSequence:
    """The asymptotic confidence sequence for the mean of ``values`` (Waudby-Smith, Arbour, Sinha, Kennedy and
    Ramdas, "Time-uniform central limit theory and asymptotic confidence sequences", 2021, Theorem 2.2):
    mean ± sqrt(2(n s² r² + 1) / (n² r²) * log(sqrt(n s² r² + 1) / alpha)), with r tuned to be tightest at
    ``planned_n`` rows, cut to ``bounds`` (the values' range) when given. Paired live comparisons use it on
    per-request differences (the mSPRT idea: a sequential test that stays valid when checked repeatedly)."""
    n = len(values)
    if n == 0:
        return ConfidenceSequence(float("nan"), float("-inf"), float("inf"), 0, alpha)
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    var = float(x.var(ddof=1)) if n > 1 else 0.0
    var = max(var, 1.0 / n)  # a few identical rows say little about the spread: never a zero-width interval
    la = -2.0 * np.log(alpha)
    r2 = (la + np.log(la + 1.0)) / planned_n
    v = n * var * r2 + 1.0
    radius = float(np.sqrt(2.0 * v / (n * n * r2) * np.log(np.sqrt(v) / alpha)))
    low, high = mean - radius, mean + radius
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return ConfidenceSequence(mean, low, high, n, alpha)
