"""The promotion gate as a pure function: the candidate vs the best baseline (and production), plus costs.

The same function decides in the run and re-decides in ``tunegate audit verify`` from
the stored predictions and the recorded gate.
"""

from __future__ import annotations

from typing import Any

from tunegate.config import GateConfig, TunegateConfig
from tunegate.costs import break_even, cost_line, duration
from tunegate.evaluation import per_example_view
from tunegate.provenance import run_provenance
from tunegate.records import (
    BreakEven,
    Comparison,
    CostLine,
    DatasetRef,
    Decision,
    EvalResult,
    PlanResult,
    RunContext,
    TuneResult,
)
from tunegate.stats import mcnemar_exact, mde_from_se, paired_bootstrap, rows_needed


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
            "output_tokens_per_request": round(b.output_tokens_per_request, 1),
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
        "output_tokens_per_request": round(tuned_eval.output_tokens_per_request, 1),
        "latency_ms_per_request": round(tuned_eval.latency_ms_per_request, 1),
        "eval_seconds": round(tuned_eval.seconds, 2),
        "trainable_params": tune.trainable_params,
        "total_params": tune.total_params,
    }
    return rows


def compare_pair(
    candidate: EvalResult, opponent: EvalResult, *, task: str, metric: str, gate: GateConfig, role: str
) -> Comparison:
    """The gate's rule against one opponent on the same rows.

    Passed iff the lower end of the paired-bootstrap CI (at 1 - alpha) of candidate - opponent
    exceeds ``min_gain`` and, for accuracy with ``gate.mcnemar`` and min_gain >= 0, McNemar's
    exact two-sided p < alpha with the candidate ahead on the discordant rows.
    """
    if [p.row for p in candidate.predictions] != [p.row for p in opponent.predictions]:
        raise RuntimeError(
            f"{candidate.name} and {opponent.name} were not scored on the same eval rows; refusing to compare"
        )
    cand_view = per_example_view(candidate, metric)
    opp_view = per_example_view(opponent, metric)
    paired = paired_bootstrap(
        metric,
        candidate=cand_view,
        baseline=opp_view,
        references=[p.reference for p in candidate.predictions],
        resamples=gate.bootstrap_samples,
        confidence=gate.confidence,
        seed=gate.seed,
    )
    mde = mde_from_se(paired.se, alpha=gate.alpha, power=gate.power)
    pct = f"{100 * gate.confidence:.0f}%"
    ci_ok = paired.ci_low > gate.min_gain
    if ci_ok:
        why = f"the {pct} CI's lower end {paired.ci_low:+.3f} exceeds the minimum gain {gate.min_gain:+.3f}"
    elif paired.ci_high <= gate.min_gain:
        why = f"the whole {pct} CI lies at or below the minimum gain {gate.min_gain:+.3f}"
    else:
        why = (
            f"the {pct} CI's lower end {paired.ci_low:+.3f} does not exceed the minimum gain {gate.min_gain:+.3f}: "
            "the gain is not established"
        )
    mc: dict[str, Any] = {}
    passed = ci_ok
    if metric == "accuracy":
        m = mcnemar_exact([x == 1.0 for x in cand_view["per_example"]], [x == 1.0 for x in opp_view["per_example"]])
        required = gate.mcnemar and gate.min_gain >= 0
        mc = dict(
            mcnemar_candidate_only=m.candidate_only,
            mcnemar_opponent_only=m.baseline_only,
            mcnemar_p=m.p_value,
            mcnemar_required=required,
        )
        mc_ok = m.p_value < gate.alpha and m.candidate_only > m.baseline_only
        if required and ci_ok and not mc_ok:
            why += (
                f", but McNemar's exact test does not confirm it (p = {m.p_value:.3g} >= alpha {gate.alpha:g}, "
                f"{m.candidate_only} vs {m.baseline_only} discordant rows)"
            )
        elif required and ci_ok:
            why += f", and McNemar's exact test confirms it (p = {m.p_value:.3g} < {gate.alpha:g})"
        passed = ci_ok and (mc_ok or not required)
    return Comparison(
        opponent=opponent.name,
        role=role,
        candidate_metric=candidate.metrics[metric],
        opponent_metric=opponent.metrics[metric],
        delta=paired.delta,
        ci_low=paired.ci_low,
        ci_high=paired.ci_high,
        se=paired.se,
        n=paired.n,
        mde=mde,
        passed=passed,
        why=why,
        **mc,
    )


def power_note(c: Comparison, gate: GateConfig) -> str | None:
    """Say so when the eval set is too small to detect the declared gain (or to confirm the observed one)."""
    power = f"{100 * gate.power:.0f}% power at alpha {gate.alpha:g}"
    if gate.min_gain > 0 and c.mde > gate.min_gain:
        need = rows_needed(c.n, c.mde, gate.min_gain)
        return (
            f"the eval set ({c.n} rows) is too small for the declared minimum gain {gate.min_gain:+.3f}: the smallest "
            "true "
            f"difference it detects with {power} is {c.mde:.3f}; about {need:,} rows would be needed"
        )
    if not c.passed and c.ci_low <= gate.min_gain < c.ci_high and c.delta > gate.min_gain:
        need = rows_needed(c.n, c.mde, c.delta - gate.min_gain)
        return (
            f"inconclusive on {c.n} rows: true differences smaller than {c.mde:.3f} usually go undetected ({power}); "
            f"confirming the observed {c.delta:+.3f} would need about {need:,} rows"
        )
    return None


def _ci(c: Comparison, gate: GateConfig) -> str:
    text = f"{c.delta:+.3f}, {100 * gate.confidence:.0f}% CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
    if c.mcnemar_p is not None:
        text += f", McNemar p = {c.mcnemar_p:.2g}"
    return text


def headline(
    *,
    promote: bool,
    method: str,
    metric: str,
    vs_base: Comparison,
    vs_prod: Comparison | None,
    n_baselines: int,
    gate: GateConfig,
    break_even: BreakEven | None,
    production_after: str | None,
) -> str:
    """The decision in one sentence."""
    base = (
        f"{method} scored {metric} {vs_base.candidate_metric:.3f} vs {vs_base.opponent_metric:.3f} for "
        f"{vs_base.opponent} (the best of {n_baselines} baselines; {_ci(vs_base, gate)})"
    )
    if vs_prod is not None:
        base += f" and {vs_prod.opponent_metric:.3f} for production {vs_prod.opponent} ({_ci(vs_prod, gate)})"
    cost = ""
    if break_even is not None and break_even.requests is None:
        cost = "; at these prices its training would never be paid back by cheaper requests"
    elif break_even is not None and break_even.requests > 0:
        when = f", {duration(break_even.months)} at the expected volume" if break_even.months is not None else ""
        cost = (
            f"; its cheaper requests pay back its training after {break_even.requests:,.0f} requests{when}"
            if promote
            else f"; it would be cheaper per request (its training paid back after {break_even.requests:,.0f} "
            f"requests{when}), "
            "but it must win on quality first"
        )
    if promote:
        return f"Tuning paid off: {base}, so it is promoted to production{cost}."
    failed = vs_base if not vs_base.passed else vs_prod
    target = "the best baseline" if failed is vs_base else f"production {failed.opponent}"
    stays = f"; production stays {production_after}" if production_after else ""
    lead = (
        "Tuning did not pay off"
        if failed is vs_base
        else "The challenger beats the baselines but not the production model"
    )
    return f"{lead}: {base}; against {target} {failed.why}, so it is not promoted{stays}{cost}."


def decide(
    *,
    task: str,
    metric: str,
    gate: GateConfig,
    baselines: list[EvalResult],
    tuned: EvalResult,
    production: EvalResult | None = None,
    costs: dict[str, dict[str, Any]] | None = None,
    cost_model: list[CostLine] | None = None,
    prices: dict[str, Any] | None = None,
    requests_per_month: int = 0,
    declared: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Decision:
    """Promote only if the candidate beats the best baseline (and production, when given) per the gate."""
    best = best_baseline(baselines, metric)
    vs_base = compare_pair(tuned, best, task=task, metric=metric, gate=gate, role="best_baseline")
    vs_prod = (
        compare_pair(tuned, production, task=task, metric=metric, gate=gate, role="production") if production else None
    )
    comparisons = [vs_base, *([vs_prod] if vs_prod else [])]
    promote = all(c.passed for c in comparisons)
    pct = 100 * gate.confidence
    reasons = [
        f"tuned {metric} {vs_base.candidate_metric:.3f} vs best baseline '{best.name}' "
        f"{vs_base.opponent_metric:.3f}: difference {vs_base.delta:+.3f}, {pct:.0f}% paired-bootstrap CI "
        f"[{vs_base.ci_low:+.3f}, {vs_base.ci_high:+.3f}] over {vs_base.n} eval rows; {vs_base.why}",
    ]
    if vs_base.mcnemar_p is not None:
        reasons.append(
            f"McNemar's exact test vs '{best.name}': {vs_base.mcnemar_candidate_only} rows only the tuned model gets "
            "right, "
            f"{vs_base.mcnemar_opponent_only} only the baseline; two-sided p = {vs_base.mcnemar_p:.3g}"
            + ("" if vs_base.mcnemar_required else " (reported, not required: gate.mcnemar is off or min_gain < 0)")
        )
    if vs_prod is not None:
        reasons.append(
            f"vs production {vs_prod.opponent} ({metric} {vs_prod.opponent_metric:.3f}): difference "
            f"{vs_prod.delta:+.3f}, CI [{vs_prod.ci_low:+.3f}, {vs_prod.ci_high:+.3f}]"
            + (f", McNemar p = {vs_prod.mcnemar_p:.3g}" if vs_prod.mcnemar_p is not None else "")
            + f"; {vs_prod.why}"
        )
    reasons.append(
        f"minimum detectable difference on these {vs_base.n} rows: {vs_base.mde:.3f} "
        f"({100 * gate.power:.0f}% power, alpha {gate.alpha:g})"
    )
    underpowered = power_note(vs_base, gate)
    if underpowered:
        reasons.append(underpowered)
    base_tok, tuned_tok = best.prompt_tokens_per_request, tuned.prompt_tokens_per_request
    if base_tok > tuned_tok * 1.05:
        reasons.append(
            f"the tuned model needs {tuned_tok:.0f} prompt tokens per request vs {base_tok:.0f} for '{best.name}'"
        )
    be = None
    if cost_model:
        lines = {c.name: c for c in cost_model}
        if tuned.name in lines and best.name in lines:
            be = break_even(lines[tuned.name], lines[best.name], requests_per_month)
            reasons.append(f"break-even vs '{best.name}': {be.reason}")
    others = [b for b in baselines if b.name != best.name]
    if others:
        reasons.append("other baselines: " + ", ".join(f"{b.name} {b.metrics[metric]:.3f}" for b in others))
    verdict = "promote" if promote else "reject"
    summary = (
        f"{'PROMOTED' if promote else 'NOT PROMOTED'}: tuned {metric} {vs_base.candidate_metric:.3f} vs {best.name} "
        f"{vs_base.opponent_metric:.3f} (delta {vs_base.delta:+.3f}, {pct:.0f}% CI [{vs_base.ci_low:+.3f}, "
        f"{vs_base.ci_high:+.3f}], min gain {gate.min_gain:+.3f})"
    )
    if vs_prod is not None:
        beaten = "beaten" if vs_prod.passed else "not beaten"
        summary += f"; vs production {vs_prod.opponent} {vs_prod.opponent_metric:.3f} ({beaten})"
    method = tuned.name.removeprefix("tuned:")
    return Decision(
        decision=verdict,
        summary=summary,
        headline=headline(
            promote=promote,
            method=method,
            metric=metric,
            vs_base=vs_base,
            vs_prod=vs_prod,
            n_baselines=len(baselines),
            gate=gate,
            break_even=be,
            production_after=production.name if production is not None else None,
        ),
        reasons=reasons,
        gate={**gate.model_dump(mode="json"), "metric": metric, **(declared or {})},
        gate_metric=metric,
        baselines={b.name: b.metrics for b in baselines},
        best_baseline=best.name,
        tuned=tuned.metrics,
        delta=vs_base.delta,
        ci_low=vs_base.ci_low,
        ci_high=vs_base.ci_high,
        comparisons=comparisons,
        production=production.name if production is not None else None,
        underpowered=underpowered,
        costs=costs or {},
        cost_model=cost_model or [],
        break_even=be,
        prices=prices or {},
        provenance=provenance or {},
    )


def judge(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    tuned_eval: EvalResult,
    tuned: TuneResult,
    *,
    plan: PlanResult | None = None,
    production: EvalResult | None = None,
) -> Decision:
    """The run's gate: :func:`decide` with the declared gate, the cost model at the configured prices, and the
    run's provenance (no files written)."""
    device = plan.hardware.device if plan is not None else "cpu"
    price = cfg.costs.train_per_hour(device)
    lines = [cost_line(cfg.costs, b, train_price_per_hour=price) for b in baselines]
    lines.append(cost_line(cfg.costs, tuned_eval, train_price_per_hour=price, tune=tuned))
    costs = costs_table(baselines, tuned_eval, tuned)
    if production is not None:
        lines.append(cost_line(cfg.costs, production, train_price_per_hour=price, kind="production"))
        costs[production.name] = {
            "prompt_tokens_per_request": round(production.prompt_tokens_per_request, 1),
            "output_tokens_per_request": round(production.output_tokens_per_request, 1),
            "latency_ms_per_request": round(production.latency_ms_per_request, 1),
        }
    return decide(
        task=cfg.task,
        metric=cfg.gate_metric,
        gate=cfg.gate,
        baselines=baselines,
        tuned=tuned_eval,
        production=production,
        costs=costs,
        cost_model=lines,
        prices={**cfg.costs.model_dump(mode="json"), "train_per_hour": price, "training_device": device},
        requests_per_month=cfg.costs.requests_per_month,
        declared={"config_hash": run.config_hash, "declared_at": run.started_at},
        provenance=run_provenance(run, dataset),
    )
