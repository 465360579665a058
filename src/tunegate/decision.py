"""The promotion gate as a pure function: the candidate vs the best baseline (and production), plus costs.

The same function decides in the run and re-decides in ``tunegate audit verify`` from
the stored predictions and the recorded gate.
"""

from __future__ import annotations

from typing import Any

from tunegate.config import GateConfig, GateSpec
from tunegate.costs import break_even, cost_line, duration
from tunegate.evaluation import per_example_view
from tunegate.headlines import guard_headline, headline, power_note
from tunegate.provenance import run_provenance
from tunegate.records import (
    BreakEven,
    Comparison,
    CostLine,
    DatasetRef,
    Decision,
    EvalResult,
    GateInputs,
    GuardResult,
    RunContext,
    TuneResult,
)
from tunegate.seeds import choose_seed, seed_record
from tunegate.selection import best_baseline, selection_reason, selection_record
from tunegate.stats import mcnemar_exact, mde_from_se, paired_bootstrap


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
            "p95_latency_ms": None if b.p95_latency_ms is None else round(b.p95_latency_ms, 1),
        }
    rows[tuned_eval.name] = {
        "train_seconds": round(tune.train_seconds, 1),
        "train_peak_rss_mb": round(tune.peak_rss_mb, 0),
        "base_weights_mb": round(tune.base_footprint_mb, 1) if tune.base_footprint_mb is not None else None,
        "prompt_tokens_per_request": round(tuned_eval.prompt_tokens_per_request, 1),
        "output_tokens_per_request": round(tuned_eval.output_tokens_per_request, 1),
        "latency_ms_per_request": round(tuned_eval.latency_ms_per_request, 1),
        "eval_seconds": round(tuned_eval.seconds, 2),
        "p95_latency_ms": None if tuned_eval.p95_latency_ms is None else round(tuned_eval.p95_latency_ms, 1),
        "trainable_params": tune.trainable_params,
        "total_params": tune.total_params,
    }
    return rows


def compare_pair(
    candidate: EvalResult,
    opponent: EvalResult,
    *,
    task: str,
    metric: str,
    gate: GateConfig,
    role: str,
    pool: list[EvalResult] | None = None,
) -> Comparison:
    """The gate's rule against one opponent on the same rows.

    Objective quality: passed iff the lower end of the paired-bootstrap CI (at 1 - alpha) of candidate - opponent
    exceeds ``min_gain`` and, for accuracy with ``gate.mcnemar`` and min_gain >= 0, McNemar's exact two-sided
    p < alpha with the candidate ahead on the discordant rows. Objective cost: iff that lower end exceeds
    ``-non_inferiority_margin`` (non-inferior; McNemar reported, not required).

    ``pool``: the rungs the opponent was chosen from *on these same rows*; the CI is then the max-statistic
    bootstrap over them (the choice redone in every resample), which corrects for having chosen on the judging rows.
    """
    if [p.row for p in candidate.predictions] != [p.row for p in opponent.predictions]:
        raise RuntimeError(
            f"{candidate.name} and {opponent.name} were not scored on the same eval rows; refusing to compare"
        )
    cand_view = per_example_view(candidate, metric)
    opp_view = per_example_view(opponent, metric)
    corrected = pool is not None and len(pool) > 1
    paired = paired_bootstrap(
        metric,
        candidate=cand_view,
        baseline=[per_example_view(o, metric) for o in pool] if corrected else opp_view,
        references=[p.reference for p in candidate.predictions],
        resamples=gate.bootstrap_samples,
        confidence=gate.confidence,
        seed=gate.seed,
    )
    mde = mde_from_se(paired.se, alpha=gate.alpha, power=gate.power)
    pct = f"{100 * gate.confidence:.0f}%"
    ci = f"{pct} CI"
    cost = gate.objective == "cost"
    bar, bar_words = (
        (-gate.non_inferiority_margin, "the non-inferiority margin")
        if cost
        else (
            gate.min_gain,
            "the minimum gain",
        )
    )
    ci_ok = paired.ci_low > bar
    if ci_ok:
        why = f"the {ci}'s lower end {paired.ci_low:+.3f} exceeds {bar_words} {bar:+.3f}"
        why += ": non-inferior" if cost else ""
    elif paired.ci_high <= bar:
        why = f"the whole {ci} lies at or below {bar_words} {bar:+.3f}"
    else:
        why = f"the {ci}'s lower end {paired.ci_low:+.3f} does not exceed {bar_words} {bar:+.3f}: " + (
            f"a loss larger than {gate.non_inferiority_margin:.3f} is not ruled out"
            if cost
            else "the gain is not established"
        )
    if corrected:
        why += f" (the CI compares with the best of the {len(pool)} rungs in each resample)"
    mc: dict[str, Any] = {}
    passed = ci_ok
    if metric == "accuracy":
        m = mcnemar_exact([x == 1.0 for x in cand_view["per_example"]], [x == 1.0 for x in opp_view["per_example"]])
        required = gate.mcnemar and gate.min_gain >= 0 and not cost
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
    correct_selection: bool = True,
    seeds: list[EvalResult] | None = None,
    guards: list[GuardResult] | None = None,
) -> Decision:
    """Promote only if the candidate wins against the best baseline (and production) per the gate's objective (better;
    or as good and cheaper) and no blocking guard failed. The best baseline is chosen on the selection split when
    the rungs were scored on one; else on the eval rows, the comparison corrected for the choice (max-statistic)."""
    best = best_baseline(baselines, metric)
    selection = selection_record(baselines, best, tuned, metric)
    pool = baselines if selection["split"] == "eval" and correct_selection else None
    if pool is None:
        selection["correction"] = None
    declared_gate = gate
    seed_info = None
    if seeds and len(seeds) > 1:
        gate, seed_info = _seeds_claim(seeds, tuned, best, task=task, metric=metric, gate=gate, pool=pool)
    vs_base = compare_pair(tuned, best, task=task, metric=metric, gate=gate, role="best_baseline", pool=pool)
    vs_prod = (
        compare_pair(tuned, production, task=task, metric=metric, gate=gate, role="production") if production else None
    )
    comparisons = [vs_base, *([vs_prod] if vs_prod else [])]
    reasons = _quality_reasons(
        vs_base,
        vs_prod,
        task=task,
        metric=metric,
        best=best,
        tuned=tuned,
        baselines=baselines,
        gate=gate,
        selection=selection,
    )
    if seed_info:
        reasons.insert(2, seed_info["why"])
    be, check = _cost_claim(
        gate, tuned, best, cost_model=cost_model, requests_per_month=requests_per_month, reasons=reasons
    )
    wins = all(c.passed for c in comparisons) and (check is None or check["passed"])
    refused = [g for g in guards or [] if g.block and g.status == "failed"]
    promote = wins and not refused
    reasons += _others(baselines, best, metric) + [g.sentence for g in guards or []]
    said = _headline(
        wins=wins,
        refused=refused,
        promote=promote,
        method=tuned.name.removeprefix("tuned:"),
        metric=metric,
        vs_base=vs_base,
        vs_prod=vs_prod,
        n_baselines=len(baselines),
        gate=gate,
        break_even=be,
        chosen_on=selection["split"],
        production_after=production.name if production is not None else None,
        cost=check,
    )
    return Decision(
        decision="promote" if promote else "reject",
        summary=_summary(promote, vs_base, vs_prod, best=best, metric=metric, gate=gate, check=check, refused=refused),
        headline=said,
        reasons=reasons,
        gate={**declared_gate.model_dump(mode="json"), "metric": metric, **(declared or {})},
        gate_metric=metric,
        baselines={b.name: b.metrics for b in baselines},
        best_baseline=best.name,
        tuned=tuned.metrics,
        delta=vs_base.delta,
        ci_low=vs_base.ci_low,
        ci_high=vs_base.ci_high,
        comparisons=comparisons,
        production=production.name if production is not None else None,
        underpowered=power_note(vs_base, gate),
        costs=costs or {},
        cost_model=cost_model or [],
        break_even=be,
        prices=prices or {},
        provenance=provenance or {},
        selection=selection,
        objective=gate.objective,
        cost_check=check,
        seeds=seed_info,
        guards=list(guards or []),
    )


def _headline(*, wins: bool, refused: list[GuardResult], **kw) -> str:
    """The decision in one sentence: the gate's headline, or, when the gate's claim holds but a blocking guard
    failed, the guard's."""
    if wins and refused:
        keep = ("method", "metric", "vs_base", "production_after")
        return guard_headline(refused, **{k: kw[k] for k in keep})
    return headline(**kw)


def _cost_claim(
    gate: GateConfig,
    tuned: EvalResult,
    best: EvalResult,
    *,
    cost_model: list[CostLine] | None,
    requests_per_month: int,
    reasons: list[str],
) -> tuple[Any, dict[str, Any] | None]:
    """Break-even against the best baseline and, with ``objective: cost``, the cost check; their reasons are
    appended to ``reasons``."""
    be = check = None
    lines = {c.name: c for c in cost_model or []}
    if tuned.name in lines and best.name in lines:
        be = break_even(lines[tuned.name], lines[best.name], requests_per_month)
        reasons.append(f"break-even vs '{best.name}': {be.reason}")
    if gate.objective == "cost":
        check = cost_check(gate, tuned, best, lines, be, requests_per_month)
        reasons.append(f"cost objective: {check['why']}")
    return be, check


def _seeds_claim(
    seeds: list[EvalResult], tuned: EvalResult, best: EvalResult, *, task: str, metric: str, gate: GateConfig, pool
) -> tuple[GateConfig, dict[str, Any]]:
    """``gate.seeds``: every seed judged against the best baseline. Returns the gate the candidate is held to
    (widened for the choice when the seed was chosen on the judging rows) and the seeds' record."""
    pick, chosen_on = choose_seed(seeds, metric)
    if tuned.details.get("seed") != pick.details.get("seed"):
        raise RuntimeError(f"the candidate is not the seed the rule chooses ({pick.name})")
    per_seed = [
        compare_pair(r, best, task=task, metric=metric, gate=gate, role="best_baseline", pool=pool) for r in seeds
    ]
    if chosen_on == "eval":  # chosen on the rows that judge: the claim is widened for the choice (Bonferroni)
        gate = gate.model_copy(update={"alpha": gate.alpha / len(seeds)})
    return gate, seed_record(seeds, per_seed, pick, chosen_on, metric, gate)


def _quality_reasons(
    vs_base: Comparison,
    vs_prod: Comparison | None,
    *,
    task: str,
    metric: str,
    best: EvalResult,
    tuned: EvalResult,
    baselines: list[EvalResult],
    gate: GateConfig,
    selection: dict[str, Any],
) -> list[str]:
    """The decision's reasons about quality, in order: the claim vs the best baseline, how that rung was chosen,
    the rung the eval rows would have chosen, McNemar, production, the detectable difference and power, and the
    prompt-length saving."""
    pct = 100 * gate.confidence
    reasons = [
        f"tuned {metric} {vs_base.candidate_metric:.3f} vs best baseline '{best.name}' "
        f"{vs_base.opponent_metric:.3f}: difference {vs_base.delta:+.3f}, {pct:.0f}% paired-bootstrap CI "
        f"[{vs_base.ci_low:+.3f}, {vs_base.ci_high:+.3f}] over {vs_base.n} eval rows; {vs_base.why}",
        selection_reason(selection, best, metric),
    ]
    top = max(baselines, key=lambda b: b.metrics[metric])
    if top.metrics[metric] > best.metrics[metric]:  # the selection split chose another rung than eval would have
        info = compare_pair(tuned, top, task=task, metric=metric, gate=gate, role="best_baseline")
        reasons.append(
            f"on the eval rows '{top.name}' scores higher than the chosen rung ({top.metrics[metric]:.3f}): the "
            f"selection split ({selection['selection_rows']} rows) did not rank the rungs as the eval rows do (a "
            f"larger data.dev makes that choice more reliable); for information, tuned vs '{top.name}': "
            f"{info.delta:+.3f}, CI [{info.ci_low:+.3f}, {info.ci_high:+.3f}] ({'passes' if info.passed else 'fails'} "
            "the rule; not the gate: that rung was chosen by looking at the judging rows)"
        )
    if vs_base.mcnemar_p is not None:
        reasons.append(
            f"McNemar's exact test vs '{best.name}': {vs_base.mcnemar_candidate_only} rows only the tuned model gets "
            "right, "
            f"{vs_base.mcnemar_opponent_only} only the baseline; two-sided p = {vs_base.mcnemar_p:.3g}"
            + (
                ""
                if vs_base.mcnemar_required
                else " (reported, not required: "
                + ("the objective is cost" if gate.objective == "cost" else "gate.mcnemar is off or min_gain < 0")
                + ")"
            )
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
    return reasons


def _others(baselines: list[EvalResult], best: EvalResult, metric: str) -> list[str]:
    others = [b for b in baselines if b.name != best.name]
    return ["other baselines: " + ", ".join(f"{b.name} {b.metrics[metric]:.3f}" for b in others)] if others else []


def _summary(
    promote: bool,
    vs_base: Comparison,
    vs_prod: Comparison | None,
    *,
    best: EvalResult,
    metric: str,
    gate: GateConfig,
    check: dict[str, Any] | None,
    refused: list[GuardResult] = (),
) -> str:
    """The decision in one line: PROMOTED / NOT PROMOTED with the numbers and the bar (and the guards that refused
    it)."""
    pct = 100 * gate.confidence
    summary = (
        f"{'PROMOTED' if promote else 'NOT PROMOTED'}: tuned {metric} {vs_base.candidate_metric:.3f} vs {best.name} "
        f"{vs_base.opponent_metric:.3f} (delta {vs_base.delta:+.3f}, {pct:.0f}% CI [{vs_base.ci_low:+.3f}, "
        f"{vs_base.ci_high:+.3f}], "
        + (
            f"non-inferiority margin {gate.non_inferiority_margin:.3f}, cost check "
            f"{'passed' if check['passed'] else 'failed'})"
            if check is not None
            else f"min gain {gate.min_gain:+.3f})"
        )
    )
    if vs_prod is not None:
        beaten = "beaten" if vs_prod.passed else "not beaten"
        summary += f"; vs production {vs_prod.opponent} {vs_prod.opponent_metric:.3f} ({beaten})"
    if refused:
        summary += "; refused by the " + ", ".join(g.guard for g in refused) + " guard" + "s" * (len(refused) > 1)
    return summary


def cost_check(
    gate: GateConfig,
    tuned: EvalResult,
    best: EvalResult,
    lines: dict[str, CostLine],
    be: BreakEven | None,
    requests_per_month: int,
) -> dict[str, Any]:
    """The objective-cost conditions beside non-inferiority: cheaper per request than the best baseline by at least
    ``min_saving``, its extra one-off cost paid back within ``payback_within``, p95 latency under ``max_latency_ms``."""
    out: dict[str, Any] = {
        "payback_within": gate.payback_within,
        "min_saving": gate.min_saving,
        "max_latency_ms": gate.max_latency_ms,
        "p95_latency_ms": tuned.p95_latency_ms,
    }
    if tuned.name not in lines or best.name not in lines:
        return {**out, "passed": False, "why": "no cost model to judge cost by (prices were not recorded)"}
    t, b = lines[tuned.name], lines[best.name]
    share = 1 - t.per_request_usd / b.per_request_usd if b.per_request_usd > 0 else 0.0
    cheaper = share >= gate.min_saving and t.per_request_usd < b.per_request_usd
    months = be.months if be is not None else None
    paid_back = cheaper and months is not None and months <= gate.payback_months
    latency_ok = gate.max_latency_ms is None or (
        tuned.p95_latency_ms is not None and tuned.p95_latency_ms <= gate.max_latency_ms
    )
    words = [
        f"${1000 * t.per_request_usd:.4g} vs ${1000 * b.per_request_usd:.4g} per 1K requests for '{best.name}' "
        f"({100 * share:+.0f}% saving; at least {100 * gate.min_saving:.0f}% required): "
        + ("cheaper" if cheaper else "not cheaper enough"),
    ]
    if cheaper and months is None:
        why = "costs.requests_per_month is 0" if not requests_per_month else "its training is never paid back"
        words.append(f"payback: {why}")
    elif cheaper:
        when = duration(months)
        words.append(
            f"training paid back {when if when.startswith('within') else 'in ' + when} (within {gate.payback_within}: "
            f"{'yes' if paid_back else 'no'})"
        )
    if gate.max_latency_ms is not None:
        p95 = "unmeasured" if tuned.p95_latency_ms is None else f"{tuned.p95_latency_ms:.0f} ms"
        words.append(f"p95 latency {p95} (ceiling {gate.max_latency_ms:g} ms: {'ok' if latency_ok else 'over'})")
    return {
        **out,
        "tuned_per_request_usd": t.per_request_usd,
        "baseline_per_request_usd": b.per_request_usd,
        "saving_share": share,
        "cheaper": cheaper,
        "payback_months": months,
        "paid_back": paid_back,
        "latency_ok": latency_ok,
        "passed": bool(cheaper and paid_back and latency_ok),
        "why": "; ".join(words),
    }


def judge(spec: GateSpec, run: RunContext, dataset: DatasetRef, inputs: GateInputs) -> Decision:
    """The run's gate: :func:`decide` with the declared gate, the cost model at the configured prices, and the
    run's provenance (no files written). With ``inputs.seeds`` the one-off cost is every seed's training."""
    baselines, tuned_eval, tuned, plan, seeds = (
        inputs.baselines,
        inputs.tuned_eval,
        inputs.tuned,
        inputs.plan,
        inputs.seeds,
    )
    production = inputs.production.evaluation if inputs.production is not None else None
    device = plan.hardware.device if plan is not None else "cpu"
    price = spec.costs.train_per_hour(device)
    lines = [cost_line(spec.costs, b, train_price_per_hour=price) for b in baselines]
    paid = tuned
    if seeds:
        paid = tuned.model_copy(update={"train_seconds": sum(t.train_seconds for t, _ in seeds)})
    line = cost_line(spec.costs, tuned_eval, train_price_per_hour=price, tune=paid)
    if seeds:
        line.one_off_what = f"training {len(seeds)} seeds, {paid.train_seconds:.0f} s"
    lines.append(line)
    costs = costs_table(baselines, tuned_eval, paid)
    if production is not None:
        lines.append(cost_line(spec.costs, production, train_price_per_hour=price, kind="production"))
        costs[production.name] = {
            "prompt_tokens_per_request": round(production.prompt_tokens_per_request, 1),
            "output_tokens_per_request": round(production.output_tokens_per_request, 1),
            "latency_ms_per_request": round(production.latency_ms_per_request, 1),
        }
    return decide(
        task=spec.task,
        metric=spec.metric,
        gate=spec.gate,
        baselines=baselines,
        tuned=tuned_eval,
        production=production,
        costs=costs,
        cost_model=lines,
        prices={**spec.costs.model_dump(mode="json"), "train_per_hour": price, "training_device": device},
        requests_per_month=spec.costs.requests_per_month,
        declared={"config_hash": run.config_hash, "declared_at": run.started_at},
        provenance=run_provenance(run, dataset),
        seeds=[e for _, e in seeds] if seeds else None,
        guards=inputs.guards.results if inputs.guards is not None else None,
    )
