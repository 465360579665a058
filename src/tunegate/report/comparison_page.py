"""compare.md: every method and rung side by side, the seeds, the best method, training."""

from __future__ import annotations

from tunegate.config import BudgetConfig, GateSpec
from tunegate.records import PlanResult, RunContext
from tunegate.report.plan_page import render_plan
from tunegate.report.rungs_table import LADDER_NOTES, ladder_table
from tunegate.report.words import _mins


def _method_row(r: dict) -> str:
    """One row of compare.md's table (a rung or a method; a method that did not finish shows its status)."""
    if r.get("metric") is None:
        return f"| {r['name']} | {r['status']} | - | - | - | - | - | - | - | - | - |"
    delta = f"{r['delta']:+.3f}"
    if r.get("delta_ci_low") is not None:
        delta += f" [{r['delta_ci_low']:+.3f}, {r['delta_ci_high']:+.3f}]"
    if r["kind"] == "baseline":
        train = "-"
        params = "0"
        mem = art = "-"
    else:
        est = f" ({_mins(r['est_train_seconds'])})" if r.get("est_train_seconds") is not None else ""
        cached = ", features cached" if (r.get("details") or {}).get("feature_cache_hit") else ""
        train = f"{_mins(r['train_seconds'])}{cached}{est}"
        params = f"{r['trainable_params']:,}"
        mem = f"{r['peak_rss_mb']:.0f} MB"
        art = f"{r['artifact_mb']:.2f} MB"
    return (
        f"| {r['name']} | {r['status']} | {r['metric']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {delta} | "
        f"{params} | {mem} | {train} | {art} | {r['latency_ms_per_request']:.0f} ms | "
        f"{r['prompt_tokens_per_request']:.0f} | {r['decision']} |"
    )


def _seeds_table(rows: list[dict], m: str, best_baseline: str, pct: str) -> list[str]:
    """With gate.seeds: each method's metric per seed and its claim over seeds and rows."""
    lines: list[str] = []
    seeded = [r for r in rows if r.get("seeds")]
    if seeded:
        lines += [
            f"## Seeds ({seeded[0]['seeds']['k']} trainings per method)",
            "",
            "The table's row is the first seed's model; the method's claim is the mean over its seeds, with a CI "
            "that resamples the seeds and the eval rows together.",
            "",
            f"| method | {m} per seed | mean delta vs {best_baseline} [{pct} CI, seeds x rows] | sd across seeds |",
            "|---|---|---|---|",
            *[
                f"| {r['name']} | "
                + ", ".join(f"seed {k}: {v:.3f}" for k, v in r["seeds"]["metrics"].items())
                + f" | {r['seeds']['mean_delta']:+.3f} [{r['seeds']['ci_low']:+.3f}, {r['seeds']['ci_high']:+.3f}] "
                f"| {r['seeds']['sd']:.3f} |"
                for r in seeded
            ],
            "",
        ]
    return lines


def _methods_training(rows: list[dict]) -> list[str]:
    """Each finished method's steps and loss (and the probe's held-out accuracy)."""
    lines: list[str] = []
    done = [r for r in rows if r["kind"] == "method" and r["status"] == "completed"]
    if done:
        lines += ["## Training", ""]
        for r in done:
            extra = r.get("details") or {}
            probe = (
                f"; held-out (early-stopping) accuracy {extra['val_accuracy']:.3f} vs majority "
                f"{extra['majority_rate']:.3f}, best epoch {extra['best_epoch']} of {extra['epochs_run']}"
                if "val_accuracy" in extra
                else ""
            )
            lines.append(
                f"- {r['name']}: {r['n_steps']} steps, loss {r['first_loss']:.4f} -> {r['last_loss']:.4f}{probe}; "
                f"loss curve `methods/{r['name']}/loss.png`"
            )
        lines.append("")
    return lines


def _guards_table(rows: list[dict], metric: str) -> list[str]:
    """Each entry's guard verdicts (a failed blocking guard makes the gate's decision reject), and the target metric
    against retention (the freezing trade-off, e.g. a sweep of method.layers)."""
    judged = [r for r in rows if r.get("guards")]
    if not judged:
        return []
    names = list(judged[0]["guards"])
    lines = [
        "## What tuning may break (guards)",
        "",
        "| model | " + " | ".join(names) + " | retention probe (base -> entry) |",
        "|---" * (len(names) + 2) + "|",
    ]
    for r in judged:
        ret = r.get("retention")
        probe = f"{ret['name']} {ret['base']:.3f} -> {ret['candidate']:.3f}" if ret else "-"
        cells = [r["guards"].get(n, "-").replace("failed", "**failed**") for n in names]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + f" | {probe} |")
    lines += ["", "Each entry's guards: methods/<entry>/guards.json and plots/.", ""]
    if any(r.get("retention") for r in judged):
        lines += [f"![{metric} against retention per entry](compare_retention.png)", ""]
    return lines


def render_comparison(
    result,
    *,
    spec: GateSpec,
    budget: BudgetConfig,
    run: RunContext,
    dataset,
    plan: PlanResult | None = None,
    ladder: list[dict] | None = None,
) -> str:
    """compare.md: the design's trade-off table, backed by measurements on this run's data."""
    m = result.gate_metric
    rows = [r.model_dump() for r in result.rows]
    pct = f"{100 * spec.gate.confidence:.0f}%"
    lines = [
        f"# Method comparison, run {run.run_id}",
        "",
        f"**{result.summary}**",
        "",
        f"Same {dataset.n_eval} eval rows for every row of the table; {dataset.n_train} training rows; base model "
        f"{run.model_id}. Gate: {m}, promote iff the lower end of the {pct} paired-bootstrap CI of (method - "
        f"{result.best_baseline}) exceeds {spec.gate.min_gain:+.3f}.",
        "",
        f"| model | status | {m} [{pct} CI] | delta vs {result.best_baseline} [{pct} CI] | trainable params | peak RSS "
        "| "
        "train time (est.) | artifact | latency / request | prompt tokens / request | decision |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_method_row(r) for r in rows]
    lines += [
        "",
        f"![{m} per model with {pct} CIs](compare.png)",
        "",
        "Notes: peak RSS is the process's resident memory during training (frozen base included). Latency is wall "
        f"time per request at batch size {spec.batch_size}. Train time (est.) is `tunegate plan`'s estimate "
        "made before training. Artifact is what the registry stores (checkpoints excluded).",
        "",
    ]
    lines += _seeds_table(rows, m, result.best_baseline, pct)
    lines += _guards_table(rows, m)
    sel = (result.winner or {}).get("why")
    if sel:
        lines += [f"Best method: {result.winner['name']}, {sel}.", ""]
    if ladder:
        lines += ["## Baseline ladder", "", *ladder_table(ladder, m, spec.gate.confidence), "", LADDER_NOTES, ""]
    failures = [r for r in rows if r["status"] in ("failed", "skipped")]
    if failures:
        lines += [
            "## Methods that did not finish",
            "",
            *[f"- **{r['name']}** ({r['status']}): {r.get('error')}" for r in failures],
            "",
        ]
    lines += _methods_training(rows)
    if plan is not None:
        lines += [render_plan(plan, budget).replace("# Plan", "## Plan (before training)", 1)]
    return "\n".join(lines) + "\n"
