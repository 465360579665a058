"""The promotion gate as a pure function: candidate vs the best baseline, plus costs."""

from __future__ import annotations

from typing import Any

from tunegate.records import Decision, EvalResult, TuneResult
from tunegate.stats import PairedDelta


def best_baseline(baselines: list[EvalResult], metric: str) -> EvalResult:
    """The strongest rung on the gate metric (ties: the cheaper prompt)."""
    return max(baselines, key=lambda b: (b.metrics[metric], -b.prompt_tokens_per_request))


def costs_table(baselines: list[EvalResult], tuned_eval: EvalResult, tune: TuneResult) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for b in baselines:
        rows[b.name] = {
            "train_seconds": 0.0,
            "train_peak_rss_mb": None,
            "prompt_tokens_per_request": round(b.prompt_tokens_per_request, 1),
            "latency_ms_per_request": round(b.latency_ms_per_request, 1),
            "retrieval_ms_per_request": round(b.retrieval_ms_per_request, 2),
            "setup_seconds": round(b.setup_seconds, 2),
            "index_mb": round(b.index_mb, 3) if b.index_mb is not None else None,
            "eval_seconds": round(b.seconds, 2),
        }
    rows[tuned_eval.name] = {
        "train_seconds": round(tune.train_seconds, 1),
        "train_peak_rss_mb": round(tune.peak_rss_mb, 0),
        "base_weights_mb": round(tune.base_footprint_mb, 1) if tune.base_footprint_mb is not None else None,
        "prompt_tokens_per_request": round(tuned_eval.prompt_tokens_per_request, 1),
        "latency_ms_per_request": round(tuned_eval.latency_ms_per_request, 1),
        "eval_seconds": round(tuned_eval.seconds, 2),
        "trainable_params": tune.trainable_params,
        "total_params": tune.total_params,
    }
    return rows


def decide(
    *,
    metric: str,
    min_gain: float,
    baselines: list[EvalResult],
    tuned: EvalResult,
    paired: PairedDelta,
    costs: dict[str, dict[str, Any]],
    gate: dict[str, Any],
    provenance: dict[str, Any],
) -> Decision:
    """Promote only if the CI's lower bound of (tuned - best baseline) exceeds ``min_gain``."""
    best = best_baseline(baselines, metric)
    pct = 100 * paired.confidence
    tuned_v, base_v = tuned.metrics[metric], best.metrics[metric]
    ci = f"[{paired.ci_low:+.3f}, {paired.ci_high:+.3f}]"
    promote = paired.ci_low > min_gain
    reasons = [
        f"tuned {metric} {tuned_v:.3f} vs best baseline '{best.name}' {base_v:.3f}: "
        f"difference {paired.delta:+.3f}, {pct:.0f}% paired-bootstrap CI {ci} over {paired.n} eval rows",
    ]
    if promote:
        reasons.append(f"the CI's lower bound {paired.ci_low:+.3f} exceeds the required minimum gain {min_gain:+.3f}")
    elif paired.ci_high <= min_gain:
        reasons.append(f"the whole CI lies at or below the required minimum gain {min_gain:+.3f}: tuning did not pay off")
    else:
        reasons.append(
            f"the CI's lower bound {paired.ci_low:+.3f} does not exceed the required minimum gain {min_gain:+.3f}: "
            "the gain is not established at this confidence (more eval rows would narrow the CI)"
        )
    base_tok = best.prompt_tokens_per_request
    tuned_tok = tuned.prompt_tokens_per_request
    if base_tok > tuned_tok * 1.05:
        reasons.append(
            f"the tuned model needs {tuned_tok:.0f} prompt tokens per request vs {base_tok:.0f} for '{best.name}'"
        )
    others = [b for b in baselines if b.name != best.name]
    if others:
        reasons.append("other baselines: " + ", ".join(f"{b.name} {b.metrics[metric]:.3f}" for b in others))
    verdict = "promote" if promote else "reject"
    summary = (
        f"{'PROMOTED' if promote else 'NOT PROMOTED'}: tuned {metric} {tuned_v:.3f} vs {best.name} {base_v:.3f} "
        f"(delta {paired.delta:+.3f}, {pct:.0f}% CI {ci}, min gain {min_gain:+.3f})"
    )
    return Decision(
        decision=verdict,
        summary=summary,
        reasons=reasons,
        gate=gate,
        gate_metric=metric,
        baselines={b.name: b.metrics for b in baselines},
        best_baseline=best.name,
        tuned=tuned.metrics,
        delta=paired.delta,
        ci_low=paired.ci_low,
        ci_high=paired.ci_high,
        costs=costs,
        provenance=provenance,
    )
