"""plan.md: each method's estimated time, memory and cost before training, the advisor's pick; plan vs actual."""

from __future__ import annotations

from tunegate.config import BudgetConfig
from tunegate.hardware import current as current_placement
from tunegate.records import PlanResult, TuneResult
from tunegate.report.words import _mins


def render_plan(plan: PlanResult, budget: BudgetConfig) -> str:
    """`tunegate plan` output and plan.md: per method params, time, memory, cost, budget fit; the advice."""
    b = budget
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
    lines += [_estimate_row(e, chosen=e.method == plan.chosen) for e in plan.estimates]
    lines += _lengths_lines(plan.lengths, plan.n_train)
    for e in plan.estimates:
        lines += _micro_batch_lines(e)
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


def _lengths_lines(lengths: dict, n_train: int) -> list[str]:
    """What max_length is (what 'auto' chose, from validation), and what the label list costs per request."""
    out = []
    if (ml := lengths.get("max_length")) is not None:
        if ml["configured"] == "auto":
            out.append(
                f"- `method.max_length: auto` -> {ml['chosen']} tokens: {ml['why']}; the memory estimates are at the "
                "rows' own lengths"
            )
        else:
            out.append(f"- `method.max_length: {ml['chosen']}` (the longest row takes {ml['longest_row']} tokens)")
    if (cost := lengths.get("label_list_tokens")) and (share := lengths.get("label_list_share")) is not None:
        line = f"- the label list in the instruction costs {cost} tokens per request ({share:.0%} of an epoch's tokens"
        if share >= LABEL_LIST_SUGGEST_SHARE:
            line += (
                f"): try `prompt.list_labels: false`: about {cost * n_train:,} fewer tokens per epoch; scoring reads "
                "each label's answer, not the list (the zero-shot rung may score lower without it)"
            )
        else:
            line += ")"
        out.append(line)
    return ["", *out] if out else []


def _micro_batch_lines(e) -> list[str]:
    """The micro-batch 'auto' chose, or a larger one to try (the same update, fewer tokens computed)."""
    s = e.suggestion
    if e.auto_micro_batch:
        chosen = e.config.get("micro_batch_size")
        if s is None:
            return ["", f"- {e.method}: `micro_batch_size: auto` -> {chosen} (no larger one computes 20% fewer tokens "
                    "within the memory limit)"]  # fmt: skip
        return [
            "",
            f"- {e.method}: `micro_batch_size: auto` -> {chosen}: the same update; the rows share their first "
            f"tokens, computed once per micro-batch, so an epoch computes {s.tokens_ratio:.1f}x fewer tokens than "
            f"at {s.configured} (estimates above at {chosen}; set an integer to fix it)",
        ]
    if s is None:
        return []
    return [
        "",
        f"- {e.method}: try `method.micro_batch_size: {s.micro_batch_size}` (now {s.configured}): the same "
        f"update; the rows share their first tokens, computed once per micro-batch, so an epoch computes "
        f"{s.tokens_ratio:.1f}x fewer tokens: est. train time {_mins(s.est_train_seconds)} instead of "
        f"{_mins(e.est_train_seconds)}, est. peak memory {s.est_peak_gb:.2f} GB instead of "
        f"{e.est_peak_mb / 1024:.2f}",
    ]


LABEL_LIST_SUGGEST_SHARE = 0.25  # the plan suggests prompt.list_labels: false from this share of an epoch


def _estimate_row(e, *, chosen: bool) -> str:
    """One method's row of the plan table: why it was not estimated, or its estimate and budget fit."""
    if not e.applicable:
        return f"| {e.method} | - | - | - | - | - | - | not applicable: {e.reason} |"
    if e.error:
        return f"| {e.method} | - | - | - | - | - | - | calibration failed: {e.error} |"
    fit = "yes" if not e.over_budget else "NO: " + "; ".join(e.over_budget)
    mark = " (chosen)" if chosen else ""
    from_config = "-" if e.est_memory is None else f"{e.est_memory.total_gb:.2f} GB"
    if not e.calibrated:
        return f"| {e.method}{mark} | - | - | - | - | {from_config} | - | {fit} |"
    return (
        f"| {e.method}{mark} | {e.trainable_params:,} ({100 * e.trainable_params / max(1, e.total_params):.3f}%) | "
        f"{e.full_train_tokens:,} | {_mins(e.est_train_seconds)} | {e.est_peak_mb / 1024:.2f} GB | {from_config} | "
        f"${e.est_cost_usd:.4f} | {fit} |"
    )


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
