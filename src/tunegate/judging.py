"""What the comparing stages produce: the gate's decision with the tables behind it, and the files people read.

``compare`` (one tuned model: the declared gate, costs, report), ``compare_methods``
(`tunegate compare`: every method side by side) and ``summarize_ladder`` (`tunegate
baselines`). Each builds its typed rows once (:mod:`tunegate.tables`), returns them in
its record and writes them out; nothing is read back from the run folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from tunegate.config import BudgetConfig, GateSpec
from tunegate.decision import compare_pair, judge
from tunegate.records import (
    DatasetRef,
    Decision,
    DeployResult,
    EvalResult,
    GateInputs,
    MethodComparison,
    MethodOutcome,
    PlanResult,
    RunContext,
)
from tunegate.registry import atomic_write_text
from tunegate.report import (
    prices_label,
    render_comparison,
    render_html,
    render_ladder,
    render_plan,
    render_run_report,
    save_break_even_plot,
    save_comparison_chart,
    save_quality_cost_plot,
    save_retention_plot,
)
from tunegate.selection import best_baseline, on_selection_split
from tunegate.tables import Intervals, comparison_summary, ladder_rows, method_rows, model_rows, write_predictions


def write_plan(run: RunContext, plan: PlanResult, budget: BudgetConfig) -> None:
    """plan.json and plan.md in the run folder."""
    run_dir = Path(run.run_dir)
    atomic_write_text(run_dir / "plan.json", plan.model_dump_json(indent=2))
    atomic_write_text(run_dir / "plan.md", render_plan(plan, budget))


def summarize_ladder(spec: GateSpec, run: RunContext, dataset: DatasetRef, baselines: list[EvalResult]) -> dict:
    """`tunegate baselines`: the ladder's table (ladder.md, ladder.json) and predictions, no tuning."""
    rows = [r.model_dump() for r in ladder_rows(spec, baselines)]
    run_dir = Path(run.run_dir)
    write_predictions(run_dir, baselines)
    best = next(r for r in rows if r["best"])
    out = {"gate_metric": spec.metric, "best": best["name"], "rows": rows, "report_md": str(run_dir / "ladder.md")}
    atomic_write_text(run_dir / "ladder.json", json.dumps(out, indent=2))
    md = render_ladder(rows, metric=spec.metric, confidence=spec.gate.confidence, run=run, dataset=dataset)
    atomic_write_text(run_dir / "ladder.md", md)
    return out


def write_run_report(run_dir: Path, md: str, *, promoted: bool | None) -> None:
    """report.md and its self-contained twin report.html (plots embedded), both written atomically."""
    atomic_write_text(run_dir / "report.md", md)
    atomic_write_text(run_dir / "report.html", render_html(md, run_dir, promoted=promoted))


def compare(spec: GateSpec, run: RunContext, dataset: DatasetRef, inputs: GateInputs) -> Decision:
    """Tuned vs the best baseline (and production) on the same rows: the declared gate, costs, break-even, and the
    model table (``Decision.models``); writes decision.json, models.json, plots/, report.md and report.html.
    ``inputs.seeds``: every training of ``gate.seeds`` (``tuned`` is the chosen one); their predictions are
    evidence."""
    baselines, tuned_eval, tuned = inputs.baselines, inputs.tuned_eval, inputs.tuned
    plan, production, validation, seeds = inputs.plan, inputs.production, inputs.validation, inputs.seeds
    prod_eval = production.evaluation if production is not None else None
    decision = judge(spec, run, dataset, inputs)
    if production is not None and prod_eval is None:
        decision.reasons.append(production.note)
    results = [*baselines, tuned_eval, *([prod_eval] if prod_eval is not None else [])]
    intervals = Intervals(spec, best_baseline(baselines, spec.metric))
    decision.models = model_rows(spec, decision, results, intervals)
    run_dir = Path(run.run_dir)
    write_predictions(run_dir, [*results, *(e for _, e in seeds or [])])
    # write-then-rename: a crash never leaves a half-written decision record behind
    atomic_write_text(run_dir / "decision.json", decision.model_dump_json(indent=2))
    rows = [m.model_dump() for m in decision.models]
    atomic_write_text(run_dir / "models.json", json.dumps(rows, indent=2))
    plots = run_dir / "plots"
    save_comparison_chart(rows, spec.metric, plots / "metric.png", confidence=spec.gate.confidence)
    save_quality_cost_plot(rows, spec.metric, plots / "quality_vs_cost.png", prices_label(decision.prices))
    save_break_even_plot(
        decision.cost_model, decision.break_even, plots / "break_even.png", spec.costs.requests_per_month
    )
    ladder = [r.model_dump() for r in ladder_rows(spec, baselines, intervals)]
    md = render_run_report(
        spec=spec,
        run=run,
        decision=decision,
        rows=rows,
        tuned=tuned,
        plan=plan,
        ladder=ladder,
        validation=validation.model_dump() if validation is not None else None,
        unparsed=results,
    )
    write_run_report(run_dir, md, promoted=decision.decision == "promote")
    return decision


def record_deployment(run: RunContext, deployment: DeployResult) -> None:
    """deployment.json, and the deployment's outcome appended to the run report."""
    run_dir = Path(run.run_dir)
    atomic_write_text(run_dir / "deployment.json", deployment.model_dump_json(indent=2))
    append_to_report(run, f"## Deployment\n\n{deployment.message}.\n", promoted=deployment.production_moved)


def append_to_report(run: RunContext, section: str, promoted: bool | None = None) -> None:
    """A markdown section added at the end of report.md, and report.html rendered again."""
    run_dir = Path(run.run_dir)
    if promoted is None:
        promoted = json.loads((run_dir / "decision.json").read_text()).get("decision") == "promote"
    write_run_report(run_dir, (run_dir / "report.md").read_text() + "\n" + section, promoted=promoted)


def choose_winner(spec: GateSpec, baselines: list[EvalResult], candidates: list[EvalResult]) -> dict:
    """The best of several candidates (methods in `tunegate compare`) and its claim against the best baseline.

    With a selection split the winner is chosen there and its delta CI on the eval rows needs no correction. Without
    one it is chosen on the rows that score it (its margin is biased upward: the winner's curse), so its CI is
    widened for the choice among k candidates (Bonferroni: level 1 - alpha/k) and compared with the best of the
    rungs in every resample.
    """
    metric, gate = spec.metric, spec.gate
    dev = on_selection_split([*baselines, *candidates])
    winner = max(candidates, key=lambda c: (c.selection.metrics if dev else c.metrics)[metric])
    best = best_baseline(baselines, metric)
    k = len(candidates)
    level = gate if dev or k == 1 else gate.model_copy(update={"alpha": gate.alpha / k})
    pool = None if dev else baselines
    c = compare_pair(winner, best, task=spec.task, metric=metric, gate=level, role="best_baseline", pool=pool)
    if dev:
        why = f"chosen on the selection split ({winner.selection.n} rows), judged on the eval rows"
    elif k == 1:
        why = "the only method"
    else:
        why = (
            f"chosen among {k} methods on the same eval rows (no selection split): its delta CI is at "
            f"{100 * (1 - level.alpha):.1f}% (Bonferroni for {k} candidates): [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        )
    return {
        "name": winner.name.removeprefix("tuned:"),
        "chosen_on": "dev" if dev else "eval",
        "candidates": k,
        "delta": c.delta,
        "ci_low": c.ci_low,
        "ci_high": c.ci_high,
        "confidence": 1 - level.alpha,
        "beats_best_baseline": c.passed,
        "why": why,
    }


def compare_methods(
    spec: GateSpec,
    budget: BudgetConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    outcomes: list[MethodOutcome],
    plan: PlanResult | None = None,
) -> MethodComparison:
    """The measured trade-off table: every rung and method on the same rows, CIs, costs, the gate's verdict each;
    writes compare.json, compare.md and compare.png."""
    best = best_baseline(baselines, spec.metric)
    decisions = {}
    for o in outcomes:
        if o.status == "completed" and o.evaluation is not None and o.tuned is not None:
            if [p.row for p in o.evaluation.predictions] != [p.row for p in best.predictions]:
                raise RuntimeError(f"{o.method} was scored on other rows than the baselines; refusing to compare")
            candidate = GateInputs(
                baselines=baselines, tuned=o.tuned, tuned_eval=o.evaluation, plan=plan, guards=o.guards
            )
            decisions[o.method] = judge(spec, run, dataset, candidate)
    intervals = Intervals(spec, best)
    rows = method_rows(spec, baselines, outcomes, decisions, intervals, plan)
    done = [o.evaluation for o in outcomes if o.method in decisions]
    winner = choose_winner(spec, baselines, done) if done else None
    run_dir = Path(run.run_dir)
    write_predictions(run_dir, [*baselines, *(o.evaluation for o in outcomes if o.evaluation is not None)])
    chart = run_dir / "compare.png"
    save_comparison_chart([r.model_dump() for r in rows], spec.metric, chart, confidence=spec.gate.confidence)
    if any(r.retention for r in rows):  # the freezing trade-off: the target metric against what was retained
        save_retention_plot([r.model_dump() for r in rows], spec.metric, run_dir / "compare_retention.png")
    result = MethodComparison(
        gate_metric=spec.metric,
        best_baseline=best.name,
        rows=rows,
        winner=winner,
        summary=comparison_summary(rows, spec.metric, best.name, winner),
        report_md=str(run_dir / "compare.md"),
        chart_png=str(chart),
    )
    atomic_write_text(run_dir / "compare.json", result.model_dump_json(indent=2))
    ladder = [r.model_dump() for r in ladder_rows(spec, baselines, intervals)]
    md = render_comparison(result, spec=spec, budget=budget, run=run, dataset=dataset, plan=plan, ladder=ladder)
    atomic_write_text(run_dir / "compare.md", md)
    return result
