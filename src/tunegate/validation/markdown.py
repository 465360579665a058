"""validation.md and validation.json: every issue with its rows, the rows used, class balance, token lengths, and
the checks that ran with what each read."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from tunegate.validation.issues import ValidationOutcome


def write_report(outcome: ValidationOutcome, out_dir: Path) -> tuple[Path, Path]:
    """validation.json and validation.md in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "validation.json"
    md = out_dir / "validation.md"
    js.write_text(
        json.dumps(
            {
                "ok": outcome.ok,
                "summary": outcome.summary(),
                "issues": [asdict(i) for i in outcome.issues],
                "stats": outcome.stats,
            },
            indent=2,
        )
    )
    md.write_text(render_markdown(outcome))
    return md, js


def render_markdown(outcome: ValidationOutcome) -> str:
    lines = ["# Data validation", "", f"**{'PASSED' if outcome.ok else 'FAILED'}**: {outcome.summary()}", ""]
    if outcome.issues:
        lines += [
            "| severity | check | split | message | rows (1-based, in the source file) |",
            "|---|---|---|---|---|",
        ]
        for i in outcome.issues:
            rows = ", ".join(str(r) for r in i.rows) if i.rows else ""
            lines.append(f"| {i.severity} | {i.check} | {i.split} | {i.message} | {rows} |")
        lines.append("")
    rows = outcome.stats.get("rows")
    if rows:
        dev = f", dev (selection only) {rows['dev']}" if "dev" in rows else ""
        lines += [f"Rows used: train {rows['train']}, eval {rows['eval']}{dev}.", ""]
    if outcome.stats.get("sampling"):
        lines += [f"Sampling (data.max_train_rows / max_eval_rows): {outcome.stats['sampling']}.", ""]
    bal = outcome.stats.get("class_balance")
    inferred = outcome.stats.get("labels_inferred")
    if bal:
        lines += ["## Class balance", ""]
        if inferred:
            lines += [
                f"data.labels is not set: the {len(inferred)} labels below were found in train; each is answered by "
                "the words shown (declare data.labels to choose them).",
                "",
                "| label | answer | train | eval |",
                "|---|---|---|---|",
            ]
            for lab, n in bal["train"].items():
                lines.append(f"| {lab} | {inferred.get(lab, lab)} | {n} | {bal['eval'].get(lab, 0)} |")
        else:
            lines += ["| label | train | eval |", "|---|---|---|"]
            for lab, n in bal["train"].items():
                lines.append(f"| {lab} | {n} | {bal['eval'].get(lab, 0)} |")
        lines.append("")
    tok = outcome.stats.get("tokens")
    if tok:
        lines += [
            "## Token lengths (prompt + answer)",
            "",
            "| split | mean | max | total (rows cut to the limit) | limit |",
            "|---|---|---|---|---|",
        ]
        for s, t in tok.items():
            lines.append(f"| {s} | {t['mean']} | {t['max']} | {t.get('total', '')} | {t['limit']} |")
        lines += _length_lines(outcome.stats)
        train_tok = outcome.stats.get("training_tokens")
        examples = outcome.stats.get("training_examples")
        if train_tok:
            what = (
                f"{examples:,} examples, one per trained assistant turn (data.train_on), x epochs"
                if examples is not None
                else "train total x epochs"
            )
            lines += [
                "",
                f"Training will process about {train_tok:,} tokens ({what}); `tunegate plan` turns that "
                "into time and cost on this machine.",
            ]
        lines.append("")
    ran = outcome.stats.get("checks")
    if ran:
        lines += ["## Checks, in order", "", "| check | reads | issues |", "|---|---|---|"]
        lines += [f"| {c['check']} | {c['reads']} | {c['issues'] or '-'} |" for c in ran]
        lines.append("")
    return "\n".join(lines)


def _length_lines(stats: dict) -> list[str]:
    """What method.max_length is (what 'auto' chose and why) and what the label list costs per request."""
    out = []
    if (ml := stats.get("max_length")) is not None:
        if ml["configured"] == "auto":
            out.append(f"`method.max_length: auto` -> **{ml['chosen']}** tokens: {ml['why']}.")
        else:
            out.append(f"`method.max_length: {ml['chosen']}` (auto would choose {ml['auto']}).")
    if (cost := stats.get("label_list_tokens")) is not None:
        share = stats.get("label_list_share")
        of_epoch = f", {share:.0%} of an epoch's tokens" if share is not None else ""
        out.append(
            f"The label list in the instruction costs {cost} tokens per request{of_epoch}; "
            "`prompt.list_labels: false` drops it."
        )
    return ["", *out] if out else []
