"""How a guard's measures are judged: the paired-bootstrap CI of candidate - reference, the declared tolerance
checked as non-inferiority on the side of harm, the rows that tolerance needs at the gate's power, and the guard's
verdict in one sentence."""

from __future__ import annotations

import numpy as np

from tunegate.guards.base import GuardSettings, Measured, Rows


def rows_needed(sd: float, tolerance: float, *, alpha: float, power: float) -> int | None:
    """Rows for a non-inferiority check at ``tolerance`` to pass with ``power`` when the true difference is 0:
    ((z_{1-alpha/2} + z_power) * sd / tolerance)^2, ``sd`` the per-row differences' standard deviation."""
    from scipy.stats import norm

    if sd <= 0 or tolerance <= 0:
        return None
    return int(np.ceil(((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * sd / tolerance) ** 2))


def judge(rows: Rows, *, alpha: float, power: float, resamples: int, seed: int):
    """One measure: the paired-bootstrap CI of mean(candidate) - mean(base) at 1 - alpha, and the tolerance checked
    as non-inferiority on the side of harm."""
    from tunegate.records import GuardMeasure
    from tunegate.stats import bootstrap_weights

    a = rows.alpha if rows.alpha is not None else alpha
    cand, base = np.asarray(rows.candidate, dtype=np.float64), np.asarray(rows.base, dtype=np.float64)
    n = len(cand)
    if n == 0 or len(base) != n:
        raise ValueError(
            f"guard measure '{rows.name}': candidate and reference need the same rows (got {n}, {len(base)})"
        )
    diff = cand - base
    w = bootstrap_weights(n, resamples, seed)
    boots = w @ diff / n
    lo, hi = (float(x) for x in np.quantile(boots, [a / 2, 1 - a / 2]))
    delta = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else 0.0
    tol = rows.tolerance
    needed = rows_needed(sd, tol, alpha=a, power=power) if tol is not None else None
    passed, underpowered, note = None, False, rows.note
    if tol is not None:
        harm_end = -lo if rows.higher_is_better else hi  # how bad it may plausibly be
        best_end = -hi if rows.higher_is_better else lo  # how good it may plausibly be
        underpowered = needed is not None and n < needed
        if harm_end <= tol:
            passed = True
        elif not underpowered or best_end > tol:  # enough rows, or even the kindest reading is past the tolerance
            passed = False
        else:  # too few rows to tell: called out, not judged (a small probe must not block every candidate)
            note = (note + "; " if note else "") + (
                f"too few rows to judge: {n} rows cannot show a tolerance of {tol:g} at {100 * power:.0f}% power "
                f"(about {needed} needed)"
            )
    return GuardMeasure(
        name=rows.name,
        unit=rows.unit,
        higher_is_better=rows.higher_is_better,
        base=float(base.mean()),
        candidate=float(cand.mean()),
        delta=delta,
        ci_low=lo,
        ci_high=hi,
        n=n,
        tolerance=tol,
        rows_needed=needed,
        underpowered=underpowered,
        passed=passed,
        note=note,
    )


def _numbers(m, confidence: str) -> str:
    tol = ""
    if m.tolerance is not None:
        tol = f"; {'max drop' if m.higher_is_better else 'max increase'} {m.tolerance:g}"
    return (
        f"{m.name} {m.unit} {m.base:.3f} -> {m.candidate:.3f} ({m.delta:+.3f}, {confidence} CI "
        f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}], {m.n} rows{tol})"
    )


def verdict(key: str, settings: GuardSettings, measured: Measured, measures: list, *, alpha: float, seconds: float):
    """The guard's :class:`GuardResult`: failed if any judged measure failed, passed if none did, and its one
    sentence (the failing measures' numbers; else the one closest to its tolerance)."""
    from tunegate.records import GuardResult

    declared = settings.model_dump(mode="json")
    confidence = f"{100 * (1 - alpha):.0f}%"
    if measured.not_measured is not None:
        return GuardResult(
            guard=key,
            status="not_measured",
            block=settings.block,
            sentence=f"{key} guard not measured: {measured.not_measured}",
            settings=declared,
            warnings=measured.warnings,
            seconds=seconds,
            reference=measured.reference,
        )
    failed = [m for m in measures if m.passed is False]
    judged = [m for m in measures if m.passed is not None]
    vs = f"vs the {measured.reference}"
    if failed:
        blocks = "blocks promotion" if settings.block else "reported, does not block (block: false)"
        sentence = f"{key} guard FAILED ({blocks}) {vs}: " + "; ".join(_numbers(m, confidence) for m in failed)
        status = "failed"
    elif judged:

        def margin(m):
            return (m.tolerance or 0) - (-m.ci_low if m.higher_is_better else m.ci_high)

        closest = min(judged, key=margin)
        sentence = (
            f"{key} guard passed {vs} ({len(judged)} measure{'s' if len(judged) != 1 else ''} within tolerance; "
            f"closest: {_numbers(closest, confidence)})"
        )
        status = "passed"
    else:
        shown = "; ".join(_numbers(m, confidence) for m in measures[:3]) or "; ".join(measured.warnings)
        sentence = f"{key} guard measured and reported (no tolerance applies) {vs}: {shown}"
        status = "reported"
    return GuardResult(
        guard=key,
        status=status,
        block=settings.block,
        sentence=sentence,
        measures=measures,
        reference=measured.reference,
        settings=declared,
        warnings=measured.warnings,
        seconds=seconds,
    )
