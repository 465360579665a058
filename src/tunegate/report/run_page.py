"""report.md: the decision in one sentence, the declared gate, every rung and candidate, costs, training, data."""

from __future__ import annotations

import json
from pathlib import Path

from tunegate.config import GateSpec
from tunegate.records import Decision, EvalResult, PlanResult, RunContext, TuneResult
from tunegate.report.guards_section import guards_section
from tunegate.report.plan_page import _plan_vs_actual
from tunegate.report.rungs_table import LADDER_NOTES, ladder_table
from tunegate.report.words import _money, prices_label


def _loss_plot(run: RunContext, tuned: TuneResult) -> str:
    """The candidate's loss plot relative to the run folder (seeds/seed-<n>/loss.png for one of several seeds)."""
    plot = Path(tuned.artifact_dir).parent / "loss.png"
    try:
        return plot.relative_to(Path(run.run_dir)).as_posix()
    except ValueError:
        return "loss.png"


def _interruptions(tuned) -> list[str]:
    """What training survived: a resume from a checkpoint, out-of-memory steps redone with a smaller micro-batch."""
    d = tuned.details or {}
    out = []
    if d.get("resumed_from_step") is not None:
        out.append(
            f"- resumed from the checkpoint of step {d['resumed_from_step']} after an interruption (a retry or "
            "`--resume`): the same batches, optimizer and RNG state as an uninterrupted run"
        )
    es = d.get("early_stopping")
    if es:
        curve = ", ".join(f"{step}: {loss:.3f}" for step, loss in es["curve"])
        out.append(
            f"- early stopping on the selection split ({es['rows']} rows; loss at step {curve}): **{es['verdict']}**: "
            f"{es['summary']}"
        )
    watch = d.get("selection_watch")
    if watch:
        accuracy = dict((s, a) for s, a in watch.get("accuracy") or [])
        per_epoch = ", ".join(
            f"step {s}: train {t:.3f} / selection {v:.3f}" + (f" (accuracy {accuracy[s]:.3f})" if s in accuracy else "")
            for (s, v), (_, t) in zip(watch["curve"], watch["train"])
        )
        out.append(f"- the selection split ({watch['rows']} rows) at each epoch end: {per_epoch}; {watch['summary']}")
    for r in d.get("oom_retries") or []:
        out.append(
            f"- out of memory at step {r['step']}: redone with micro-batch {r['retried_with']} (was "
            f"{r['micro_batch_size']}), the same update; the rest of training kept it"
        )
    return out


def _unparsed_note(results: list[EvalResult]) -> list[str]:
    """Regression: how many answers held no number (scored as the train mean)."""
    counts = [
        (r.name, r.details["unparsed_answers"], r.n, r.details.get("fallback"))
        for r in results
        if "unparsed_answers" in r.details
    ]
    if not any(c for _, c, _, _ in counts):
        return []
    parts = [f"{name} {c}/{n}" for name, c, n, _ in counts]
    fallback = next((f for *_, f in counts if f is not None), None)
    return ["", f"Answers without a number (scored as the train mean {fallback:.3g}): " + ", ".join(parts) + "."]


def _rule(decision: Decision, pct: str) -> str:
    """The gate's rule in words, for its objective, and where the best rung was chosen."""
    g = decision.gate
    against = f"the best baseline{' and the production model' if g.get('must_beat_production') else ''}"
    if decision.objective == "cost":
        rule = (
            f"Rule (objective cost): promote iff, against {against}, the lower end of the {pct} paired-bootstrap CI "
            f"of the difference exceeds -{g['non_inferiority_margin']:.3f} (non-inferior), and the tuned model is at "
            f"least {100 * g['min_saving']:.0f}% cheaper per request than the best baseline with its extra one-off "
            f"cost paid back within {g['payback_within']} at the expected volume"
            + (f" and its p95 latency is at most {g['max_latency_ms']:g} ms" if g.get("max_latency_ms") else "")
            + "."
        )
    else:
        rule = (
            f"Rule: promote iff, against {against}, the lower end of the {pct} paired-bootstrap CI of the difference "
            "exceeds the minimum gain"
            + (
                " and McNemar's exact test rejects equal accuracy at alpha"
                if g.get("mcnemar") and decision.gate_metric == "accuracy"
                else ""
            )
            + "."
        )
    sel = decision.selection or {}
    if sel.get("split") == "dev":
        rule += (
            f" The best baseline is chosen on the selection split ({sel['selection_rows']} rows) and judged on the "
            f"{sel['judging_rows']} eval rows no choice has seen."
        )
    elif sel.get("correction"):
        rule += (
            " No selection split: the best baseline is chosen on the judging rows, and the CI corrects for it (the "
            "best rung is chosen again in every bootstrap resample)."
        )
    return rule + " MDE: the smallest true difference these eval rows detect at the declared alpha and power."


def _seeds_section(decision: Decision) -> list[str]:
    """gate.seeds: each training seed against the best baseline, and which one is the candidate."""
    sd = decision.seeds
    if not sd:
        return []
    m = decision.gate_metric
    lines = [
        f"## Seeds ({sd['k']} trainings of the method)",
        "",
        f"| seed | {m} on the selection split | {m} (eval) | difference vs {decision.best_baseline} [CI] "
        "| passes alone | |",
        "|---|---|---|---|---|---|",
    ]
    for x in sd["per_seed"]:
        sel = "-" if x["selection_metric"] is None else f"{x['selection_metric']:.3f}"
        mark = "**the candidate**" if x["name"] == sd["chosen"] else ""
        lines.append(
            f"| {x['seed']} | {sel} | {x['metric']:.3f} | {x['delta']:+.3f} [{x['ci_low']:+.3f}, {x['ci_high']:+.3f}] "
            f"| {'yes' if x['passed'] else 'no'} | {mark} |"
        )
    lines += [
        "",
        f"Spread of the difference across seeds: sd {sd['sd']:.3f}, from {sd['min']:+.3f} to {sd['max']:+.3f}; "
        f"{100 * sd['share_passed']:.0f}% of seeds pass the gate on their own. The candidate was chosen "
        + (
            "on the selection split."
            if sd["chosen_on"] == "dev"
            else f"on the eval rows (no selection split): its CI is at {100 * sd['confidence']:.1f}%."
        ),
        "",
    ]
    return lines


def _gate_table(decision: Decision) -> list[str]:
    g = decision.gate
    cost = g.get("objective") == "cost"
    mcnemar = g.get("mcnemar") and not cost and decision.gate_metric == "accuracy" and g["min_gain"] >= 0
    objective = (
        f"cost: non-inferior within {g['non_inferiority_margin']:.3f}, {100 * g['min_saving']:.0f}% cheaper per "
        f"request, paid back within {g['payback_within']}"
        + (f", p95 latency <= {g['max_latency_ms']:g} ms" if g.get("max_latency_ms") else "")
        if cost
        else "quality"
    )
    return [
        "| objective | gate metric | minimum gain | alpha (CI level) | McNemar required | must beat production | "
        "power for MDE | resamples, seed | declared |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {objective} | {decision.gate_metric} | {g['min_gain']:+.3f} | {g['alpha']:g} "
        f"({100 * (1 - g['alpha']):.0f}%) | "
        f"{'yes' if mcnemar else 'no'} | "
        f"{'yes' if g.get('must_beat_production') else 'no'} | {g['power']:g} | {g['bootstrap_samples']}, {g['seed']} "
        "| "
        f"in config {str(g.get('config_hash', ''))[:12]} at {g.get('declared_at', '?')} |",
    ]


def _comparison_table(decision: Decision) -> list[str]:
    lines = [
        "| against | candidate | opponent | delta [CI] | McNemar (only cand. / only opp., p) | MDE | passed |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in decision.comparisons:
        mc = (
            (
                f"{c.mcnemar_candidate_only} / {c.mcnemar_opponent_only}, p = {c.mcnemar_p:.3g}"
                + ("" if c.mcnemar_required else " (not required)")
            )
            if c.mcnemar_p is not None
            else "-"
        )
        lines.append(
            f"| {c.opponent} ({c.role.replace('_', ' ')}) | {c.candidate_metric:.3f} | {c.opponent_metric:.3f} | "
            f"{c.delta:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}] | {mc} | {c.mde:.3f} | "
            f"{'yes' if c.passed else '**no**'} |"
        )
    return lines


def _models_table(rows: list[dict], metric: str, best: str, pct: str) -> list[str]:
    dev = any(r.get("selection_metric") is not None for r in rows)
    lines = [
        f"| model | {metric} [{pct} CI] | " + ("selection split | " if dev else "") + f"delta vs {best} [{pct} CI] "
        "| prompt / output tokens | latency ms | one-off cost | per 1K requests | per month | decision |",
        "|---|---|" + ("---|" if dev else "") + "---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = f"{r['delta']:+.3f}" + (
            f" [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]" if r.get("delta_ci_low") is not None else ""
        )
        sel = (f"{r['selection_metric']:.3f} | " if r.get("selection_metric") is not None else "- | ") if dev else ""
        lines.append(
            f"| {r['name']} | {r['metric']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {sel}{delta} | "
            f"{r['prompt_tokens']:.0f} / {r['output_tokens']:.1f} | {r['latency_ms']:.0f} | {_money(r['one_off_usd'])} "
            f"({r['one_off_what']}) | "
            f"{_money(1000 * r['per_request_usd'])} | {_money(r['monthly_usd'])} | {r['decision']} |"
        )
    return lines


def _validation_summary(validation: dict | None) -> list[str]:
    if not validation:
        return ["(no validation report found)"]
    st = validation.get("stats", {})
    rows = st.get("rows", {})
    lines = [
        f"- {validation.get('summary', '')} {rows.get('train', '?')} train rows, {rows.get('eval', '?')} eval rows; "
        f"data hash `{str(st.get('data_hash', ''))[:16]}`."
    ]
    for side, src in (st.get("sources") or {}).items():
        lines.append(f"- {side}: `{src}`")
    bal = st.get("class_balance")
    if bal:
        for side, counts in bal.items():
            lines.append(f"- {side} labels: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    tok = st.get("tokens")
    if tok:
        lines.append(
            "- tokens per row: "
            + "; ".join(f"{k} mean {v['mean']}, max {v['max']} (limit {v['limit']})" for k, v in tok.items())
        )
    issues = validation.get("issues") or []
    if issues:
        lines.append(f"- {len(issues)} warning(s): " + "; ".join(str(i.get("message", i))[:120] for i in issues[:5]))
    lines.append("- full report: `validation.md`")
    return lines


def _cost_section(decision: Decision) -> list[str]:
    """Break-even and the cost lines of the candidate, production and the best baseline."""
    be = decision.break_even
    return [
        "## Cost and break-even",
        "",
        f"- break-even of the tuned model vs {decision.best_baseline}: {be.reason if be else 'n/a'}",
        *[
            f"- {c.name}: one-off {_money(c.one_off_usd)} ({c.one_off_what}), {_money(c.per_request_usd * 1000)} per "
            "1K requests, "
            f"{_money(c.monthly_usd)} per month"
            for c in decision.cost_model
            if c.kind != "baseline" or c.name == decision.best_baseline
        ],
        "",
        "![break-even](plots/break_even.png)",
        "",
    ]


def _training_section(run: RunContext, tuned: TuneResult) -> list[str]:
    """The method, its parameters, the hardware, speed and memory, the loss, interruptions and the loss plot."""
    losses = tuned.loss_curve
    head = losses[: max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10) :]
    return [
        "## Training",
        "",
        f"- method: {tuned.method}; trainable parameters {tuned.trainable_params:,} of {tuned.total_params:,} "
        f"({100 * tuned.trainable_params / tuned.total_params:.2f}%)",
        f"- hardware: {run.placement.describe()} (scoring, training and the frozen base; `hardware:` in the config)",
        f"- {tuned.n_steps} steps in {tuned.train_seconds:.0f} s ({tuned.tokens_per_s:.0f} tokens/s), "
        f"peak RSS {tuned.peak_rss_mb:.0f} MB"
        + (f"; frozen base weights {tuned.base_footprint_mb:.0f} MB" if tuned.base_footprint_mb is not None else ""),
        f"- loss: first {len(head)} step(s) mean {sum(head) / len(head):.4f} -> last {len(tail)} step(s) mean "
        f"{sum(tail) / len(tail):.4f}; per epoch: {', '.join(f'{x:.4f}' for x in tuned.epoch_losses)}",
        *_interruptions(tuned),
        "",
        f"![training loss]({_loss_plot(run, tuned)})",
        "",
    ]


def render_run_report(
    *,
    spec: GateSpec,
    run: RunContext,
    decision: Decision,
    rows: list[dict],
    tuned: TuneResult,
    plan: PlanResult | None = None,
    ladder: list[dict] | None = None,
    validation: dict | None = None,
    unparsed: list[EvalResult] | None = None,
) -> str:
    """report.md: the decision in one sentence, the declared gate, every rung and candidate with quality and
    cost, the plots, the ladder, training, data validation, provenance. report.html is rendered from it."""
    pct = f"{100 * spec.gate.confidence:.0f}%"
    lines = [
        f"# tunegate run {run.run_id}",
        "",
        f"**{decision.headline}**",
        "",
        f"`{decision.summary}`",
        "",
        "## The gate (declared in the config before the run)",
        "",
        *_gate_table(decision),
        "",
        _rule(decision, pct),
        "",
        *_comparison_table(decision),
        "",
        *([f"**Eval set size:** {decision.underpowered}.", ""] if decision.underpowered else []),
        "## Why",
        "",
        *[f"- {r}" for r in decision.reasons],
        "",
        *_seeds_section(decision),
        *guards_section(decision, pct),
        f"## Every rung and candidate (same {decision.comparisons[0].n} eval rows)",
        "",
        *_models_table(rows, decision.gate_metric, decision.best_baseline, pct),
        "",
        f"Prices (`costs`): {prices_label(decision.prices)}; training and one-off setup at "
        f"${decision.prices.get('train_per_hour', 0):g}/h; "
        f"{decision.prices.get('requests_per_month', 0):,} requests/month. Token counts come from the real tokenizer "
        "on the real prompts, "
        f"times from this run. Latency is wall time per request at batch size {spec.batch_size}.",
        *(_unparsed_note(unparsed) if unparsed else []),
        "",
        f"![{decision.gate_metric} per model with {pct} CIs](plots/metric.png)",
        "",
        "![quality vs cost per request](plots/quality_vs_cost.png)",
        "",
        *_cost_section(decision),
        *(
            [
                "## Baseline ladder",
                "",
                *ladder_table(ladder, decision.gate_metric, spec.gate.confidence),
                "",
                LADDER_NOTES,
                "",
            ]
            if ladder
            else []
        ),
        *_training_section(run, tuned),
        *(_plan_vs_actual(plan, tuned) if plan is not None else []),
        "## Data validation",
        "",
        *_validation_summary(validation),
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps(decision.provenance, indent=2),
        "```",
        "",
        "Files: `decision.json`, `validation.md`, `plan.md`, `predictions/*.jsonl`, `artifact/` (the method's "
        "weights), `config.yaml`, `report.html` (this report, self-contained).",
    ]
    return "\n".join(lines) + "\n"
