"""Where the best rung is chosen: on the selection split when every rung was scored there, else on the eval rows
(then the gate corrects for the choice); the choice in words."""

from __future__ import annotations

from typing import Any

from tunegate.records import (
    EvalResult,
)


def on_selection_split(results: list[EvalResult]) -> bool:
    """Whether choices among ``results`` can be made on the selection split (every one was scored on it)."""
    return bool(results) and all(r.selection is not None for r in results)


def best_baseline(baselines: list[EvalResult], metric: str) -> EvalResult:
    """The strongest rung on the gate metric (ties: the cheaper prompt), chosen on the selection split when the
    rungs were scored on one, else on the eval rows."""
    dev = on_selection_split(baselines)
    return max(
        baselines,
        key=lambda b: ((b.selection.metrics if dev else b.metrics)[metric], -b.prompt_tokens_per_request),
    )


def selection_record(
    baselines: list[EvalResult], best: EvalResult, tuned: EvalResult | None, metric: str
) -> dict[str, Any]:
    """Where the best rung (``best``) was chosen and every model's score there and on the judging rows."""
    dev = on_selection_split(baselines)
    scores = {
        r.name: {
            "selection": r.selection.metrics[metric] if r.selection is not None else None,
            "judging": r.metrics[metric],
        }
        for r in [*baselines, *([tuned] if tuned is not None else [])]
    }
    return {
        "split": "dev" if dev else "eval",
        "selection_rows": baselines[0].selection.n if dev else None,
        "judging_rows": baselines[0].n,
        "candidates": len(baselines),
        "chosen": best.name,
        "correction": None if dev or len(baselines) < 2 else "max-statistic bootstrap over the rungs",
        "scores": scores,
    }


def selection_reason(selection: dict[str, Any], best: EvalResult, metric: str) -> str:
    """Where the best rung was chosen, in words."""
    k = selection["candidates"]
    if selection["split"] == "dev":
        return (
            f"the best baseline was chosen on the selection split ({selection['selection_rows']} rows, never judged): "
            f"'{best.name}' with {metric} {best.selection.metrics[metric]:.3f} there; the gate judges on the "
            f"{selection['judging_rows']} eval rows no choice has seen"
        )
    if k < 2:
        return "one baseline: nothing was chosen"
    return (
        f"the best of {k} baselines was chosen on the same {selection['judging_rows']} eval rows that judge (no "
        "selection split: set data.dev or data.dev_fraction); corrected for that choice: the CI compares with the "
        f"best of the {k} rungs in every bootstrap resample (max-statistic)"
    )
