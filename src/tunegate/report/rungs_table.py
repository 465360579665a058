"""The baseline ladder as a table (every rung's quality, what goes into its prompt, its costs), and ladder.md."""

from __future__ import annotations

from tunegate.records import RunContext


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
    searched = next((r for r in rows if r.get("search")), None)
    return lines + (search_lines(searched, metric) if searched is not None else [])


SHOWN_CANDIDATES = 12


def search_lines(row: dict, metric: str) -> list[str]:
    """What the prompt search chose and every candidate it scored (prompts/optimized.json has them all)."""
    s = row["search"]
    chosen, demos = s["chosen"], s["chosen"]["demos"]
    first = s["candidates"][0]["selection_metric"]
    verdict = (
        f"it kept the configured instruction ({metric} {first:.3f} there): no gain is claimed"
        if s["kept_configured"]
        else f"the chosen prompt scored {first + s['gain_on_selection']:.3f} there vs {first:.3f} for the configured "
        "one (optimistic: chosen on those rows; its selection score in the table is on the rows the search never "
        "saw, where every rung is compared, and the eval rows judge it)"
    )
    fixed_demos = f"{demos['source']} train rows {demos['rows']} (row numbers in the train file)"
    shown_demos = {"none": "none", "retrieved": f"the {demos.get('k')} most similar train rows per input (bm25)"}
    lines = [
        "",
        f"**Optimized prompt** ({row['name']}): {len(s['candidates'])} candidates scored on {s['selection_rows']} "
        f"selection rows in {s['seconds']:.0f} s ({s['tokens']:,} prompt tokens; stopped by "
        f"{s['stopped_by'] or 'the rounds'}); {verdict}.",
        "",
        f'- instruction: "{chosen["instruction"]}"',
        f"- demonstrations: {shown_demos.get(demos['source']) or fixed_demos}",
        "",
        f"| # | origin | round | instruction | demonstrations | {metric} (selection) | tokens / request |",
        "|---|---|---|---|---|---|---|",
    ]
    ranked = sorted(enumerate(s["candidates"], 1), key=lambda c: -c[1]["selection_metric"])[:SHOWN_CANDIDATES]
    for i, c in ranked:
        text = c["instruction"].replace("|", "\\|")
        lines.append(
            f"| {i} | {c['origin']} | {c['round']} | {text[:100] + ('...' if len(text) > 100 else '')} | "
            f"{c['demos']['source']} | {c['selection_metric']:.3f} | {c['tokens_per_request']:.0f} |"
        )
    return lines


def render_ladder(rows: list[dict], *, metric: str, confidence: float, run: RunContext, dataset) -> str:
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
                *ladder_table(rows, metric, confidence),
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
