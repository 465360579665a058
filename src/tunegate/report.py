"""Human-readable outputs: the run report, the model card, the loss plot."""

from __future__ import annotations

import json
from pathlib import Path

from tunegate.config import TunegateConfig
from tunegate.hardware import current as current_placement
from tunegate.records import Decision, EvalResult, PlanResult, RunContext, TuneResult


def save_loss_plot(
    losses: list[float], path: Path, xlabel: str = "optimizer step", selection: dict | None = None
) -> None:
    """The training loss per step (and its moving mean); with early stopping, the selection-split loss at each
    evaluation and the step whose weights were kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, lw=1, alpha=0.5, label=f"{xlabel.split()[-1]} loss")
    if len(losses) >= 5:
        w = max(2, len(losses) // 10)
        smooth = [
            sum(losses[max(0, i - w + 1) : i + 1]) / len(losses[max(0, i - w + 1) : i + 1]) for i in range(len(losses))
        ]
        ax.plot(range(1, len(losses) + 1), smooth, lw=2, label=f"moving mean ({w})")
    if selection:
        steps, values = zip(*selection["curve"])
        ax.plot(steps, values, "o-", lw=2, color="tab:red", label="selection-split loss")
        ax.axvline(selection["best_step"], color="tab:red", ls=":", lw=1, label=f"kept: step {selection['best_step']}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss")
    ax.set_title("Training loss" + (f" ({selection['verdict']})" if selection else ""))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_comparison_chart(rows: list[dict], metric: str, path: Path, confidence: float = 0.95) -> None:
    """Horizontal bars of the gate metric with CI whiskers: baselines grey, methods by the gate's verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.55 * len(rows) + 1.4), dpi=100)
    colors = {"promote": "#2e7d32", "reject": "#c62828", "best baseline": "#616161", "baseline": "#9e9e9e"}
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        if r.get("metric") is None:
            ax.text(0.01, y, f"{r['name']}: {r['status']}", va="center", fontsize=9, color="#c62828")
            continue
        err = [[r["metric"] - r["ci_low"]], [r["ci_high"] - r["metric"]]]
        ax.barh(y, r["metric"], xerr=err, color=colors.get(r["decision"], "#1565c0"), capsize=4, height=0.6)
        ax.text(r["ci_high"] + 0.01, y, f"{r['metric']:.3f}", va="center", fontsize=9)
    best = next((r for r in rows if r.get("decision") == "best baseline"), None)
    if best is not None:
        ax.axvline(best["metric"], color="#616161", ls="--", lw=1)
    ax.set_yticks(range(len(rows)), [r["name"] for r in reversed(rows)])
    lows = [r["ci_low"] for r in rows if r.get("metric") is not None]
    ax.set_xlim(min([0.0, *lows]) - (0.05 if min([0.0, *lows]) < 0 else 0.0), 1.1)  # R2 can be negative
    ax.set_xlabel(f"{metric} ({100 * confidence:.0f}% bootstrap CI)")
    ax.set_title("Same eval rows. Grey: baselines; green: promoted; red: not promoted", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


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


def render_comparison(
    result,
    *,
    cfg: TunegateConfig,
    run: RunContext,
    dataset,
    plan: PlanResult | None = None,
    ladder: list[dict] | None = None,
) -> str:
    """compare.md: the design's trade-off table, backed by measurements on this run's data."""
    m = result.gate_metric
    rows = [r.model_dump() for r in result.rows]
    pct = f"{100 * cfg.gate.confidence:.0f}%"
    lines = [
        f"# Method comparison, run {run.run_id}",
        "",
        f"**{result.summary}**",
        "",
        f"Same {dataset.n_eval} eval rows for every row of the table; {dataset.n_train} training rows; base model "
        f"{run.model_id}. Gate: {m}, promote iff the lower end of the {pct} paired-bootstrap CI of (method - "
        f"{result.best_baseline}) exceeds {cfg.gate.min_gain:+.3f}.",
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
        f"time per request at batch size {cfg.baselines.batch_size}. Train time (est.) is `tunegate plan`'s estimate "
        "made before training. Artifact is what the registry stores (checkpoints excluded).",
        "",
    ]
    lines += _seeds_table(rows, m, result.best_baseline, pct)
    sel = (result.winner or {}).get("why")
    if sel:
        lines += [f"Best method: {result.winner['name']}, {sel}.", ""]
    if ladder:
        lines += ["## Baseline ladder", "", *ladder_table(ladder, m, cfg.gate.confidence), "", LADDER_NOTES, ""]
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
        lines += [render_plan(plan, cfg).replace("# Plan", "## Plan (before training)", 1)]
    return "\n".join(lines) + "\n"


def ladder_table(rows: list[dict], metric: str, confidence: float) -> list[str]:
    """Every baseline rung with quality and cost: the rows come from ``tables.ladder_rows``."""
    pct = f"{100 * confidence:.0f}%"
    dev = any(r.get("selection_metric") is not None for r in rows)
    lines = [
        f"| rung | {metric} [{pct} CI] | " + (f"{metric} on the selection split | " if dev else "") + "in the prompt "
        "| prompt tokens / request | retrieval ms / request | latency ms / request | one-off setup | index size "
        "| note |",
        "|---|---|" + ("---|" if dev else "") + "---|---|---|---|---|---|---|",
    ]
    for r in rows:
        setup = f"{r['setup_seconds']:.1f} s" if r["setup_seconds"] else "-"
        if r.get("index_build_seconds") is not None:
            setup += f" (index build {r['index_build_seconds']:.1f} s{', cached' if r['index_cached'] else ''})"
        size = f"{r['index_mb']:.2f} MB" if r.get("index_mb") is not None else "-"
        note = "**the baseline**" if r["best"] else ""
        if r.get("leakage_excluded"):
            note += ("; " if note else "") + f"leakage guard withheld {r['leakage_excluded']} identical train row(s)"
        sel = (f"{r['selection_metric']:.3f} | " if r.get("selection_metric") is not None else "- | ") if dev else ""
        lines.append(
            f"| {r['name']} | {r['metric']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {sel}{r['prompt']} | "
            f"{r['prompt_tokens_per_request']:.0f} | {r['retrieval_ms_per_request']:.1f} | "
            f"{r['latency_ms_per_request']:.0f} | {setup} | {size} | {note} |"
        )
    return lines


def render_ladder(rows: list[dict], *, metric: str, cfg: TunegateConfig, run: RunContext, dataset) -> str:
    """ladder.md (`tunegate baselines`): what prompting and retrieval give without tuning."""
    best = next(r for r in rows if r["best"])
    return (
        "\n".join(
            [
                f"# Baseline ladder, run {run.run_id}",
                "",
                f"**Best rung: {best['name']}, {metric} {best['metric']:.3f}** (the baseline a tuned model must beat).",
                "",
                f"Same {dataset.n_eval} eval rows for every rung; {dataset.n_train} train rows; base model "
                f"{run.model_id}.",
                "",
                *ladder_table(rows, metric, cfg.gate.confidence),
                "",
                LADDER_NOTES,
                "",
            ]
        )
        + "\n"
    )


LADDER_NOTES = (
    "Latency is (scoring + retrieval) wall time per request at the scoring batch size; retrieval embeds and searches "
    "all eval inputs in one batch. One-off setup is the index build (or its load from the content-hash cache) or the "
    "calibration scoring. Retrieved ids per eval row are in `predictions/<rung>.jsonl` (`retrieved`), indexes in "
    "`indexes/<rung>/`."
)


def _mins(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def render_plan(plan: PlanResult, cfg: TunegateConfig) -> str:
    """`tunegate plan` output and plan.md: per method params, time, memory, cost, budget fit; the advice."""
    b = cfg.budget
    caps = [
        f"time {b.max_train_minutes:g} min" if b.max_train_minutes else None,
        f"memory {b.max_memory_gb:g} GB" if b.max_memory_gb else None,
        f"cost ${b.max_cost_usd:g}" if b.max_cost_usd else None,
    ]
    caps = [c for c in caps if c] or ["none"]
    lines = [
        "# Plan",
        "",
        f"- hardware: {plan.hardware.describe()}",
        f"- base model: {plan.base_params / 1e6:.1f} M parameters; {plan.n_train} training rows",
        f"- price: ${plan.price_per_hour:g} per hour (costs.cpu_per_hour or gpu_per_hour); budget caps: "
        f"{', '.join(caps)}",
        "- estimates: a short calibration run of each method here (3 optimizer steps on real rows incl. the longest, "
        "first step not timed; the probe: features of 64 rows after an untimed warm-up), scaled by the full run's "
        "token count",
        "",
        "- memory from the config alone (before loading anything): weights + adapters/optimizer + activations "
        f"in {current_placement().describe()}; a method that cannot fit the device is not calibrated",
        "",
        "| method | trainable params | train tokens | est. train time | est. peak memory | memory from config "
        "| est. cost | fits budget |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in plan.estimates:
        if not e.applicable:
            lines.append(f"| {e.method} | - | - | - | - | - | - | not applicable: {e.reason} |")
            continue
        if e.error:
            lines.append(f"| {e.method} | - | - | - | - | - | - | calibration failed: {e.error} |")
            continue
        fit = "yes" if not e.over_budget else "NO: " + "; ".join(e.over_budget)
        mark = " (chosen)" if e.method == plan.chosen else ""
        from_config = "-" if e.est_memory is None else f"{e.est_memory.total_gb:.2f} GB"
        if not e.calibrated:
            lines.append(f"| {e.method}{mark} | - | - | - | - | {from_config} | - | {fit} |")
            continue
        lines.append(
            f"| {e.method}{mark} | {e.trainable_params:,} ({100 * e.trainable_params / max(1, e.total_params):.3f}%) | "
            f"{e.full_train_tokens:,} | {_mins(e.est_train_seconds)} | {e.est_peak_mb / 1024:.2f} GB | {from_config} | "
            f"${e.est_cost_usd:.4f} | {fit} |"
        )
    for e in plan.estimates:
        if (s := e.suggestion) is not None:
            lines += [
                "",
                f"- {e.method}: try `method.micro_batch_size: {s.micro_batch_size}` (now {s.configured}): the same "
                f"update; the rows share their first tokens, computed once per micro-batch, so an epoch computes "
                f"{s.tokens_ratio:.1f}x fewer tokens: est. train time {_mins(s.est_train_seconds)} instead of "
                f"{_mins(e.est_train_seconds)}, est. peak memory {s.est_peak_gb:.2f} GB instead of "
                f"{e.est_peak_mb / 1024:.2f}",
            ]
    reused = [e.method for e in plan.estimates if e.calibration_cached]
    if reused:
        lines += [
            "",
            f"- calibration of {', '.join(reused)} measured by an earlier run on this machine (same rows, settings, "
            "precision and code; `$TUNEGATE_CACHE/calibration/`)",
        ]
    if plan.advice is not None:
        a = plan.advice
        lines += [
            "",
            f"## Advisor (`method: auto`): {a.chosen}",
            "",
            f"- rule: {a.rule}",
            "- inputs: " + "; ".join(f"{k}={v}" for k, v in a.inputs.items() if k != "budget"),
            *[f"- not {m}: {why}" for m, why in a.alternatives.items()],
        ]
    if plan.blocked:
        lines += ["", f"**Over budget: training will not start.** {plan.blocked}"]
    return "\n".join(lines) + "\n"


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
    for r in d.get("oom_retries") or []:
        out.append(
            f"- out of memory at step {r['step']}: redone with micro-batch {r['retried_with']} (was "
            f"{r['micro_batch_size']}), the same update; the rest of training kept it"
        )
    return out


def _plan_vs_actual(plan: PlanResult, tuned: TuneResult) -> list[str]:
    e = plan.estimate_for(tuned.method)
    if e is None or not e.applicable:
        return []
    err = (e.est_train_seconds - tuned.train_seconds) / tuned.train_seconds * 100 if tuned.train_seconds else 0.0
    lines = [
        "## Plan vs actual",
        "",
        "| | estimated | actual |",
        "|---|---|---|",
        f"| train time | {_mins(e.est_train_seconds)} | {_mins(tuned.train_seconds)} ({err:+.0f}% estimate error) |",
        f"| peak memory (process RSS) | {e.est_peak_mb:.0f} MB | {tuned.peak_rss_mb:.0f} MB |",
        f"| cost at ${plan.price_per_hour:g}/h | ${e.est_cost_usd:.4f} | "
        f"${tuned.train_seconds / 3600 * plan.price_per_hour:.4f} |",
        "",
    ]
    if plan.advice is not None:
        a = plan.advice
        lines += [
            f"Method chosen by the advisor (`method: auto`): **{a.chosen}**. Rule: {a.rule}.",
            "",
            "Inputs: " + "; ".join(f"{k}={v}" for k, v in a.inputs.items() if k != "budget") + ".",
            "",
            *[f"- not {m}: {why}" for m, why in a.alternatives.items()],
            "",
        ]
    return lines


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


def _money(x: float) -> str:
    if x == 0:
        return "$0"
    return f"${x:.2f}" if abs(x) >= 1 else f"${x:.4f}" if abs(x) >= 0.0001 else f"${x:.2e}"


def save_quality_cost_plot(rows: list[dict], metric: str, path: Path, prices_label: str) -> None:
    """Each rung and candidate at (cost per 1K requests, metric with its CI): up-left is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    colors = {
        "baseline": "#9e9e9e",
        "best baseline": "#616161",
        "promote": "#2e7d32",
        "reject": "#c62828",
        "production": "#1565c0",
    }
    seen: dict[tuple, int] = {}
    for r in rows:
        x = 1000 * r["per_request_usd"]
        ax.errorbar(
            [x],
            [r["metric"]],
            yerr=[[r["metric"] - r["ci_low"]], [r["ci_high"] - r["metric"]]],
            fmt="o",
            capsize=3,
            color=colors.get(r["decision"], "#1565c0"),
            ms=7,
        )
        near = (round(x, 6), round(r["metric"], 2))  # points on top of each other: stack their labels
        k = seen[near] = seen.get(near, -1) + 1
        ax.annotate(r["name"], (x, r["metric"]), textcoords="offset points", xytext=(6, 4 - 11 * k), fontsize=8)
    ax.set_xlabel(f"$ per 1,000 requests ({prices_label})")
    ax.set_ylabel(metric)
    ax.set_title("Quality vs cost per request (up and to the left is better)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def save_break_even_plot(lines: list, break_even, path: Path, requests_per_month: int) -> None:
    """Cumulative cost (one-off + requests x per-request) of the candidate and each baseline over request volume."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = 3 * max(requests_per_month, 1)
    if break_even is not None and break_even.requests:
        horizon = max(horizon, 2 * break_even.requests)
    # a break-even far left of the horizon would be invisible on a linear axis: use a log axis then
    log_x = break_even is not None and bool(break_even.requests) and break_even.requests < horizon / 50
    xs = [horizon ** (i / 200) for i in range(201)] if log_x else [horizon * i / 100 for i in range(101)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for c in lines:
        emphasis = c.kind != "baseline" or (break_even is not None and c.name == break_even.against)
        ax.plot(
            xs,
            [c.one_off_usd + x * c.per_request_usd for x in xs],
            label=c.name,
            lw=2.2 if emphasis else 0.8,
            alpha=1.0 if emphasis else 0.5,
        )
    if break_even is not None and break_even.requests:
        cand = next(c for c in lines if c.name == break_even.candidate)
        y = cand.one_off_usd + break_even.requests * cand.per_request_usd
        ax.axvline(break_even.requests, color="#2e7d32", ls="--", lw=1)
        ax.annotate(
            f"break-even: {break_even.requests:,.0f} requests",
            (break_even.requests, y),
            textcoords="offset points",
            xytext=(5, -12),
            fontsize=8,
            color="#2e7d32",
        )
    for m in range(1, int(horizon // max(requests_per_month, 1)) + 1):
        if requests_per_month and m * requests_per_month <= horizon:
            ax.axvline(m * requests_per_month, color="#bdbdbd", lw=0.6, ls=":")
    if log_x:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(f"requests served{' (log scales)' if log_x else ''} (dotted: months at {requests_per_month:,}/month)")
    ax.set_ylabel("cumulative cost ($)")
    title = "Break-even: " + (break_even.reason.split(":")[0] if break_even is not None else "n/a")
    ax.set_title(title[:90], fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


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


def prices_label(prices: dict) -> str:
    if prices.get("inference") == "hourly":
        return f"serving ${prices['serving_per_hour']:g}/h x measured latency"
    return f"${prices['input_per_1k_tokens']:g} / ${prices['output_per_1k_tokens']:g} per 1K prompt / output tokens"


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
    cfg: TunegateConfig,
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
    pct = f"{100 * cfg.gate.confidence:.0f}%"
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
        f"## Every rung and candidate (same {decision.comparisons[0].n} eval rows)",
        "",
        *_models_table(rows, decision.gate_metric, decision.best_baseline, pct),
        "",
        f"Prices (`costs`): {prices_label(decision.prices)}; training and one-off setup at "
        f"${decision.prices.get('train_per_hour', 0):g}/h; "
        f"{decision.prices.get('requests_per_month', 0):,} requests/month. Token counts come from the real tokenizer "
        "on the real prompts, "
        f"times from this run. Latency is wall time per request at batch size {cfg.baselines.batch_size}.",
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
                *ladder_table(ladder, decision.gate_metric, cfg.gate.confidence),
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


HTML_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:24px auto;
padding:0 16px;color:#212121;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #e0e0e0;padding-bottom:6px}
h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:8px 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
tr:nth-child(even) td{background:#fafafa}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px;font-size:12px}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px}
img{max-width:100%;border:1px solid #eee;margin:6px 0}
.headline{font-size:1.15em;padding:12px 16px;border-left:6px solid VAR;background:#fafafa}
"""


def render_html(md_text: str, base_dir: Path, *, promoted: bool | None = None) -> str:
    """report.html from report.md: one file, images embedded as data URIs, no external resources."""
    import base64
    import html as _html
    import re

    import markdown

    body = markdown.markdown(md_text, extensions=["tables", "fenced_code"])

    def embed(m: re.Match) -> str:
        src = m.group(2)
        f = base_dir / src
        if src.startswith("data:") or not f.is_file():
            return m.group(0) if src.startswith("data:") else f"<em>[missing image {_html.escape(src)}]</em>"
        data = base64.b64encode(f.read_bytes()).decode()
        return f"{m.group(1)}data:image/png;base64,{data}{m.group(3)}"

    body = re.sub(r'(<img [^>]*src=")([^"]+)(")', embed, body)
    body = body.replace("<p><strong>", '<p class="headline"><strong>', 1)
    title = md_text.splitlines()[0].lstrip("# ").strip() if md_text else "tunegate report"
    style = HTML_STYLE.replace("VAR", {True: "#2e7d32", False: "#c62828", None: "#1565c0"}[promoted])
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def render_model_card(*, name: str, run: RunContext, decision: Decision, tuned: TuneResult, cfg: TunegateConfig) -> str:
    p = decision.provenance
    return "\n".join(
        [
            f"# {name}",
            "",
            f"**Decision: {decision.decision.upper()}**: {decision.summary}",
            "",
            f"- base model: {run.model_id} (sha256 {run.model_sha[:16]}...)",
            f"- trained and evaluated on: {run.placement.describe()}",
            f"- method: {tuned.method}, {tuned.trainable_params:,} trainable parameters; adapter in `artifact/adapter` "
            "(PEFT format)",
            f"- task: {cfg.task}; labels: {', '.join(cfg.data.label_answers()) or '-'}",
            f"- data hash: {p['data_hash']} ({p['n_train']} train / {p['n_eval']} eval rows)",
            f"- config hash: {p['config_hash']}; code version {p['code_version']}; run {run.run_id}",
            "",
            "## Metrics (eval rows)",
            "",
            "| model | " + " | ".join(decision.tuned) + " |",
            "|---|" + "---|" * len(decision.tuned),
            *[f"| {n} | " + " | ".join(f"{v:.3f}" for v in m.values()) + " |" for n, m in decision.baselines.items()],
            "| tuned | " + " | ".join(f"{v:.3f}" for v in decision.tuned.values()) + " |",
            "",
            f"Gate: {decision.gate_metric} delta {decision.delta:+.3f}, CI [{decision.ci_low:+.3f}, "
            f"{decision.ci_high:+.3f}], min gain {decision.gate['min_gain']:+.3f}.",
            "",
            "## Reasons",
            "",
            *[f"- {r}" for r in decision.reasons],
            "",
            "## Config",
            "",
            "```json",
            json.dumps(cfg.model_dump(mode="json"), indent=2),
            "```",
            "",
        ]
    )
