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


def common_rows(results: list[EvalResult]) -> set[int]:
    """The selection rows every result was scored on (a searched prompt is scored only on the rows its search did
    not see, so the others are compared there too)."""
    rows = [{p.row for p in r.selection.predictions} for r in results if r.selection is not None]
    return set.intersection(*rows) if rows else set()


def selection_scores(results: list[EvalResult], metric: str) -> dict[str, float]:
    """Each result's ``metric`` on the selection rows all of them were scored on (:func:`common_rows`)."""
    from tunegate import metrics

    rows = common_rows(results)
    out = {}
    for r in results:
        if len(r.selection.predictions) == len(rows):
            out[r.name] = r.selection.metrics[metric]
        else:
            kept = [p for p in r.selection.predictions if p.row in rows]
            out[r.name] = metrics.value(metric, [p.prediction for p in kept], [p.reference for p in kept])
    return out


def best_baseline(baselines: list[EvalResult], metric: str) -> EvalResult:
    """The strongest rung on the gate metric (ties: the cheaper prompt), chosen on the selection split when the
    rungs were scored on one (on the rows every rung was scored on), else on the eval rows."""
    if on_selection_split(baselines):
        on_dev = selection_scores(baselines, metric)
        return max(baselines, key=lambda b: (on_dev[b.name], -b.prompt_tokens_per_request))
    return max(baselines, key=lambda b: (b.metrics[metric], -b.prompt_tokens_per_request))


def selection_record(
    baselines: list[EvalResult], best: EvalResult, tuned: EvalResult | None, metric: str
) -> dict[str, Any]:
    """Where the best rung (``best``) was chosen and every model's score there and on the judging rows."""
    dev = on_selection_split(baselines)
    models = [*baselines, *([tuned] if tuned is not None else [])]
    on_dev = selection_scores([m for m in models if m.selection is not None], metric) if dev else {}
    scores = {r.name: {"selection": on_dev.get(r.name), "judging": r.metrics[metric]} for r in models}
    return {
        "split": "dev" if dev else "eval",
        "selection_rows": len(common_rows(baselines)) if dev else None,
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
            f"'{best.name}' with {metric} {selection['scores'][best.name]['selection']:.3f} there; the gate judges on "
            f"the {selection['judging_rows']} eval rows no choice has seen"
        )
    if k < 2:
        return "one baseline: nothing was chosen"
    return (
        f"the best of {k} baselines was chosen on the same {selection['judging_rows']} eval rows that judge (no "
        "selection split: set data.dev or data.dev_fraction); corrected for that choice: the CI compares with the "
        f"best of the {k} rungs in every bootstrap resample (max-statistic)"
    )
