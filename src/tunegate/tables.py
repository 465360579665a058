"""The tables a run reports, as typed rows built once: the ladder, the run's models, `tunegate compare`'s methods.

Every interval is computed once per table set: :class:`Intervals` keeps each model's
bootstrap CI, and a candidate's paired CI against the best baseline is the gate's own
(``Decision``), never recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.config import GateSpec
from tunegate.evaluation import per_example_view
from tunegate.ladder import core as ladder
from tunegate.records import Decision, EvalResult, LadderRow, MethodOutcome, MethodRow, ModelRow, PlanResult
from tunegate.registry import atomic_write_text
from tunegate.selection import best_baseline, selection_scores
from tunegate.stats import bootstrap_ci, paired_bootstrap, seed_row_bootstrap


class Intervals:
    """Each model's gate metric with its bootstrap CI on the judging rows, computed once per model."""

    def __init__(self, spec: GateSpec, best: EvalResult):
        self.gate, self.metric = spec.gate, spec.metric
        self.references = [p.reference for p in best.predictions]
        self._done: dict[str, tuple[float, float, float]] = {}

    def paired(self, candidate: EvalResult, opponent: EvalResult) -> tuple[float, float]:
        """The paired-bootstrap CI of candidate - opponent (for a model the gate did not compare with the best)."""
        g = self.gate
        d = paired_bootstrap(
            self.metric,
            candidate=per_example_view(candidate, self.metric),
            baseline=per_example_view(opponent, self.metric),
            references=self.references,
            resamples=g.bootstrap_samples,
            confidence=g.confidence,
            seed=g.seed,
        )
        return d.ci_low, d.ci_high

    def of(self, result: EvalResult) -> tuple[float, float, float]:
        if result.name not in self._done:
            g = self.gate
            view = per_example_view(result, self.metric)
            self._done[result.name] = bootstrap_ci(
                self.metric,
                side=view,
                references=self.references,
                resamples=g.bootstrap_samples,
                confidence=g.confidence,
                seed=g.seed,
            )
        return self._done[result.name]


def ladder_rows(spec: GateSpec, baselines: list[EvalResult], intervals: Intervals | None = None) -> list[LadderRow]:
    """Each rung's gate metric with its bootstrap CI and its costs."""
    best = best_baseline(baselines, spec.metric)
    iv = intervals or Intervals(spec, best)
    on_dev = selection_scores([b for b in baselines if b.selection is not None], spec.metric)
    rows = []
    for b in baselines:
        v, lo, hi = iv.of(b)
        rows.append(
            LadderRow(
                name=b.name,
                metric=v,
                ci_low=lo,
                ci_high=hi,
                best=b.name == best.name,
                prompt=ladder.describe(b.rung, b.details),
                prompt_tokens_per_request=b.prompt_tokens_per_request,
                retrieval_ms_per_request=b.retrieval_ms_per_request,
                latency_ms_per_request=b.latency_ms_per_request,
                setup_seconds=b.setup_seconds,
                index_build_seconds=b.index_build_seconds,
                index_cached=bool(b.details.get("index_cached")),
                index_mb=b.index_mb,
                leakage_excluded=b.details.get("leakage_excluded", 0),
                selection_metric=on_dev.get(b.name),  # on the selection rows every rung was scored on
                search=b.details.get("search"),
            )
        )
    return rows


def model_rows(spec: GateSpec, decision: Decision, results: list[EvalResult], intervals: Intervals) -> list[ModelRow]:
    """Every rung and candidate with its metric CI, delta vs the best baseline (the gate's paired CI) and costs."""
    best = next(r for r in results if r.name == decision.best_baseline)
    lines = {c.name: c for c in decision.cost_model}
    verdict = {"production": "production", "tuned": decision.decision}
    # on the selection rows every rung was scored on (a searched prompt's are fewer), as the choice was made
    on_dev = {n: s["selection"] for n, s in decision.selection.get("scores", {}).items() if s["selection"] is not None}
    rows = []
    for r in results:
        v, lo, hi = intervals.of(r)
        c = lines[r.name]
        if r.kind == "tuned":  # the gate's own paired CI against the best baseline
            delta_ci: tuple[float | None, float | None] = (decision.ci_low, decision.ci_high)
        elif r.kind == "production":
            delta_ci = intervals.paired(r, best)
        else:
            delta_ci = (None, None)
        rows.append(
            ModelRow(
                name=r.name,
                kind=r.kind,
                metric=v,
                ci_low=lo,
                ci_high=hi,
                delta=v - best.metrics[spec.metric],
                delta_ci_low=delta_ci[0],
                delta_ci_high=delta_ci[1],
                prompt_tokens=c.prompt_tokens,
                output_tokens=c.output_tokens,
                latency_ms=c.latency_ms,
                one_off_usd=c.one_off_usd,
                one_off_what=c.one_off_what,
                per_request_usd=c.per_request_usd,
                monthly_usd=c.monthly_usd,
                decision=verdict.get(r.kind, "best baseline" if r.name == best.name else "baseline"),
                selection_metric=on_dev.get(r.name, r.selection.metrics[spec.metric] if r.selection else None),
            )
        )
    return rows


def artifact_size_mb(artifact_dir: str | Path) -> float:
    """Size of what a version stores for the method (checkpoints excluded)."""
    root = Path(artifact_dir)
    from tunegate.methods.base import CHECKPOINTS

    files = [f for f in root.rglob("*") if f.is_file() and CHECKPOINTS not in f.relative_to(root).parts]
    return sum(f.stat().st_size for f in files) / 2**20


def method_rows(
    spec: GateSpec,
    baselines: list[EvalResult],
    outcomes: list[MethodOutcome],
    decisions: dict[str, Decision],
    intervals: Intervals,
    plan: PlanResult | None = None,
) -> list[MethodRow]:
    """The measured trade-off table: every rung and method on the same rows, each with the gate's verdict."""
    metric = spec.metric
    best = best_baseline(baselines, metric)
    on_dev = selection_scores([b for b in baselines if b.selection is not None], metric)
    rows: list[MethodRow] = []
    for b in baselines:
        v, lo, hi = intervals.of(b)
        rows.append(
            MethodRow(
                name=b.name,
                kind="baseline",
                status="completed",
                metric=v,
                ci_low=lo,
                ci_high=hi,
                delta=v - best.metrics[metric],
                trainable_params=0,
                train_seconds=0.0,
                latency_ms_per_request=b.latency_ms_per_request,
                prompt_tokens_per_request=b.prompt_tokens_per_request,
                decision="best baseline" if b.name == best.name else "baseline",
                selection_metric=on_dev.get(b.name),
            )
        )
    for o in outcomes:
        est = plan.estimate_for(o.registered or o.method) if plan is not None else None
        row = MethodRow(
            name=o.method,
            kind="method",
            status=o.status,
            error=o.error,
            est_train_seconds=est.est_train_seconds if est and est.applicable and not est.error else None,
        )
        d = decisions.get(o.method)
        if d is not None and o.evaluation is not None and o.tuned is not None:
            row = row.model_copy(update=_judged_method(spec, o, d, intervals, best))
        rows.append(row)
    return rows


def _guard_cells(o: MethodOutcome) -> dict[str, Any]:
    """An entry's guard verdicts, and its first retention probe (the sweep plot's x axis)."""
    if o.guards is None:
        return {}
    retention = next((g for g in o.guards.results if g.guard == "retention" and g.measures), None)
    probe = retention.measures[0] if retention is not None else None
    return {
        "guards": {g.guard: g.status for g in o.guards.results},
        "retention": None
        if probe is None
        else {
            "name": probe.name,
            "base": probe.base,
            "candidate": probe.candidate,
            "ci_low": probe.ci_low,
            "ci_high": probe.ci_high,
        },
    }


def _judged_method(
    spec: GateSpec, o: MethodOutcome, d: Decision, intervals: Intervals, best: EvalResult
) -> dict[str, Any]:
    """A trained and judged method's cells: its metric and CI, the gate's delta, its training and serving costs."""
    v, lo, hi = intervals.of(o.evaluation)
    t, e = o.tuned, o.evaluation
    return dict(
        **_guard_cells(o),
        metric=v,
        ci_low=lo,
        ci_high=hi,
        delta=d.delta,
        delta_ci_low=d.ci_low,
        delta_ci_high=d.ci_high,
        trainable_params=t.trainable_params,
        total_params=t.total_params,
        peak_rss_mb=t.peak_rss_mb,
        base_weights_mb=t.base_footprint_mb,
        train_seconds=t.train_seconds,
        n_steps=t.n_steps,
        first_loss=t.loss_curve[0] if t.loss_curve else None,
        last_loss=t.loss_curve[-1] if t.loss_curve else None,
        artifact_mb=artifact_size_mb(t.artifact_dir),
        latency_ms_per_request=e.latency_ms_per_request,
        selection_metric=e.selection.metrics[spec.metric] if e.selection is not None else None,
        seeds=seed_claim(spec, o.seeds, best) if len(o.seeds) > 1 else None,
        prompt_tokens_per_request=e.prompt_tokens_per_request,
        decision=d.decision,
        details=t.details,
    )


def seed_claim(spec: GateSpec, seeds: list[EvalResult], best: EvalResult) -> dict:
    """A method trained with several seeds: each seed's metric, and the mean difference from the best baseline with
    a CI over seeds and rows together (`stats.seed_row_bootstrap`)."""
    metric, g = spec.metric, spec.gate
    d = seed_row_bootstrap(
        metric,
        seeds=[per_example_view(s, metric) for s in seeds],
        baseline=per_example_view(best, metric),
        references=[p.reference for p in best.predictions],
        resamples=g.bootstrap_samples,
        confidence=g.confidence,
        seed=g.seed,
    )
    return {
        "k": len(seeds),
        "metrics": {str(s.details.get("seed")): s.metrics[metric] for s in seeds},
        "mean_delta": d.delta,
        "ci_low": d.ci_low,
        "ci_high": d.ci_high,
        "sd": float(np.std([s.metrics[metric] for s in seeds], ddof=1)),
    }


def comparison_summary(rows: list[MethodRow], metric: str, best: str, winner: dict | None = None) -> str:
    """One line: the best completed method (chosen as ``winner`` says) and its verdict, and which methods failed."""
    chosen = next((r for r in rows if winner and r.kind == "method" and r.name == winner["name"]), None)
    summary = (
        f"best method: {chosen.name} {metric} {chosen.metric:.3f} (delta {chosen.delta:+.3f} vs {best}, "
        f"{chosen.decision}; {winner['why']})"
        if chosen is not None
        else "no method completed"
    )
    failed = [r.name for r in rows if r.status == "failed"]
    return summary + (f"; failed: {', '.join(failed)}" if failed else "")


SELECTION_SUFFIX = ".selection.jsonl"


PROMPT_ARTIFACT = "prompts/optimized.json"  # a searched prompt: what was chosen and every candidate tried


def write_predictions(run_dir: Path, results: list[EvalResult]) -> None:
    """predictions/<model>.jsonl: every eval row's prediction (the evidence `tunegate audit verify` re-decides from),
    predictions/<model>.selection.jsonl: its selection-split rows, when there are any, and prompts/optimized.json:
    a searched prompt's record (instruction, demonstration rows, every candidate's selection score)."""
    pred_dir = Path(run_dir) / "predictions"
    pred_dir.mkdir(exist_ok=True)
    for r in results:
        lines = [p.model_dump_json() for p in r.predictions]
        (pred_dir / f"{r.name.replace(':', '_')}.jsonl").write_text("\n".join(lines) + "\n")
        if r.selection is not None:  # the selection split's predictions: what the choices were made on
            lines = [p.model_dump_json() for p in r.selection.predictions]
            (pred_dir / f"{r.name.replace(':', '_')}{SELECTION_SUFFIX}").write_text("\n".join(lines) + "\n")
        if "search" in r.details and r.kind == "baseline" and "calibrated_from" not in r.details:
            (Path(run_dir) / "prompts").mkdir(exist_ok=True)
            atomic_write_text(Path(run_dir) / PROMPT_ARTIFACT, json.dumps(r.details["search"], indent=2))
