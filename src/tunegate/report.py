"""Human-readable outputs: the run report, the model card, the loss plot."""

from __future__ import annotations

import json
from pathlib import Path

from tunegate.config import TunegateConfig
from tunegate.records import Decision, EvalResult, RunContext, TuneResult


def save_loss_plot(losses: list[float], path: Path, xlabel: str = "optimizer step") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, lw=1, alpha=0.5, label=f"{xlabel.split()[-1]} loss")
    if len(losses) >= 5:
        w = max(2, len(losses) // 10)
        smooth = [sum(losses[max(0, i - w + 1) : i + 1]) / len(losses[max(0, i - w + 1) : i + 1]) for i in range(len(losses))]
        ax.plot(range(1, len(losses) + 1), smooth, lw=2, label=f"moving mean ({w})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _metric_table(results: list[EvalResult], metric_names: list[str], costs: dict) -> list[str]:
    head = "| model | " + " | ".join(metric_names) + " | prompt tokens / request | latency ms / request | train s |"
    lines = [head, "|" + "---|" * (len(metric_names) + 4)]
    for r in results:
        c = costs.get(r.name, {})
        vals = " | ".join(f"{r.metrics[m]:.3f}" for m in metric_names)
        lines.append(
            f"| {r.name} | {vals} | {r.prompt_tokens_per_request:.0f} | {r.latency_ms_per_request:.0f} | {c.get('train_seconds', 0):.0f} |"
        )
    return lines


def render_run_report(
    *, cfg: TunegateConfig, run: RunContext, decision: Decision, baselines: list[EvalResult], tuned_eval: EvalResult, tuned: TuneResult
) -> str:
    metric_names = list(tuned_eval.metrics)
    losses = tuned.loss_curve
    head = losses[: max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10) :]
    lines = [
        f"# tunegate run {run.run_id}",
        "",
        f"**{decision.summary}**",
        "",
        "## Why",
        "",
        *[f"- {r}" for r in decision.reasons],
        "",
        f"## Quality and cost (same {tuned_eval.n} eval rows)",
        "",
        *_metric_table([*baselines, tuned_eval], metric_names, decision.costs),
        "",
        f"Latency is wall time per request at batch size {tuned_eval.batch_size}.",
        "",
        "## Training",
        "",
        f"- method: {tuned.method}; trainable parameters {tuned.trainable_params:,} of {tuned.total_params:,} "
        f"({100 * tuned.trainable_params / tuned.total_params:.2f}%)",
        f"- {tuned.n_steps} steps in {tuned.train_seconds:.0f} s ({tuned.tokens_per_s:.0f} tokens/s), "
        f"peak RSS {tuned.peak_rss_mb:.0f} MB"
        + (f"; frozen base weights {tuned.base_footprint_mb:.0f} MB" if tuned.base_footprint_mb is not None else ""),
        f"- loss: first {len(head)} step(s) mean {sum(head) / len(head):.4f} -> last {len(tail)} step(s) mean "
        f"{sum(tail) / len(tail):.4f}; per epoch: {', '.join(f'{x:.4f}' for x in tuned.epoch_losses)}",
        "",
        "![training loss](loss.png)",
        "",
        "## Provenance",
        "",
        "```json",
        json.dumps(decision.provenance, indent=2),
        "```",
        "",
        "Files: `decision.json`, `validation.md`, `predictions/*.jsonl`, `artifact/` (PEFT adapter), `config.yaml`.",
    ]
    return "\n".join(lines) + "\n"


def render_model_card(*, name: str, run: RunContext, decision: Decision, tuned: TuneResult, cfg: TunegateConfig) -> str:
    p = decision.provenance
    return "\n".join(
        [
            f"# {name}",
            "",
            f"**Decision: {decision.decision.upper()}**: {decision.summary}",
            "",
            f"- base model: {run.model_id} (sha256 {run.model_sha[:16]}...)",
            f"- method: {tuned.method}, {tuned.trainable_params:,} trainable parameters; adapter in `artifact/adapter` (PEFT format)",
            f"- task: {cfg.task}; labels: {', '.join(cfg.data.label_answers()) or '-'}",
            f"- data hash: {p['data_hash']} ({p['n_train']} train / {p['n_eval']} eval rows)",
            f"- config hash: {p['config_hash']}; code version {p['code_version']}; run {run.run_id}",
            "",
            "## Metrics (eval rows)",
            "",
            "| model | " + " | ".join(decision.tuned) + " |",
            "|---|" + "---|" * len(decision.tuned),
            *[f"| {n} | " + " | ".join(f"{v:.3f}" for v in m.values()) + " |" for n, m in decision.baselines.items()],
            f"| tuned | " + " | ".join(f"{v:.3f}" for v in decision.tuned.values()) + " |",
            "",
            f"Gate: {decision.gate_metric} delta {decision.delta:+.3f}, CI [{decision.ci_low:+.3f}, {decision.ci_high:+.3f}], "
            f"min gain {decision.gate['min_gain']:+.3f}.",
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
