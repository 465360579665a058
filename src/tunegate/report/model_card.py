"""The model card a registered version carries."""

from __future__ import annotations

import json

from tunegate.records import Decision, RunContext, TuneResult


def render_model_card(
    *, name: str, run: RunContext, decision: Decision, tuned: TuneResult, config: dict, labels: list[str]
) -> str:
    """README.md of a registered version: the decision, provenance, metrics, reasons and the run's config
    (``config``: its JSON dump; ``labels``: the answer labels, empty for a task without a label set)."""
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
            f"- task: {config['task']}; labels: {', '.join(labels) or '-'}",
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
            json.dumps(config, indent=2),
            "```",
            "",
        ]
    )
