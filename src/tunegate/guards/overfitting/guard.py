"""Overfitting: did the candidate learn the train rows rather than the task?

- **The training curve**: the train loss beside the selection-split loss at each evaluation (each epoch end when
  the data has a selection split; early stopping's evaluations); a warning when the gap widens while the selection
  loss rises.
- **Memorisation** (generation): the share of eval outputs that copy a train answer verbatim (an ``ngram``-word
  run of some train target), candidate vs the retrieved few-shot rung (the rung that shows train answers in its
  prompt; the best rung when the ladder has none).
"""

from __future__ import annotations

from tunegate.guards.base import Guard, Measured, Rows
from tunegate.guards.overfitting.settings import OverfittingSettings


def grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = str(text).lower().split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def copies(outputs: list[str], train_answers: list[str], n: int) -> list[float]:
    """1.0 for each output holding an ``n``-word run of some train answer."""
    seen: set[tuple[str, ...]] = set()
    for a in train_answers:
        seen |= grams(a, n)
    return [float(bool(grams(o, n) & seen)) for o in outputs]


def loss_gap(tuned) -> tuple[str | None, list[str]]:
    """(a sentence on the train vs selection loss, warnings) from the training's selection-split evaluations (early
    stopping's, or the watch's at each epoch end)."""
    details = tuned.details or {}
    watch, es = details.get("selection_watch"), details.get("early_stopping")
    if watch and watch.get("curve"):
        points = [(s, v, t) for (s, v), (_, t) in zip(watch["curve"], watch["train"])]
    elif es and es.get("curve"):
        losses = tuned.loss_curve
        points = []
        for step, sel in es["curve"]:
            window = losses[max(0, step - 5) : step] or losses[:1]
            points.append((step, sel, sum(window) / len(window)))
    else:
        return None, []
    gaps = [(s, v - t, v) for s, v, t in points]
    first, last = gaps[0], gaps[-1]
    lowest = min(g[2] for g in gaps)
    accuracy = [a for _, a in (watch or {}).get("accuracy") or []]
    words = (
        f"selection loss {first[2]:.3f} -> {last[2]:.3f} over {len(gaps)} evaluations; selection - train loss gap "
        f"{first[1]:+.3f} -> {last[1]:+.3f}"
        + (f"; selection accuracy {accuracy[0]:.3f} -> {accuracy[-1]:.3f}" if accuracy else "")
    )
    # the metric falling (or, without one, the selection loss rising) while the gap widens
    falls = accuracy[-1] < max(accuracy) if accuracy else last[2] > lowest
    warnings = []
    if len(gaps) > 1 and last[1] > first[1] and falls:
        what = (
            f"the selection accuracy fell from its best ({max(accuracy):.3f} -> {accuracy[-1]:.3f})"
            if accuracy
            else f"the selection loss rose from its lowest ({lowest:.3f} -> {last[2]:.3f})"
        )
        warnings.append(
            f"over-fitting: the gap between selection and train loss widened ({first[1]:+.3f} -> {last[1]:+.3f}) "
            f"while {what}; method.early_stopping keeps the best weights"
        )
    return words, warnings


class Overfitting(Guard):
    def measure(self, settings: OverfittingSettings, ctx) -> Measured:
        import polars as pl

        from tunegate.problems import task_type

        out = Measured()
        words, out.warnings = loss_gap(ctx.tuned)
        if words:
            out.warnings.insert(0, words)
        if task_type(ctx.spec.task).generates:
            ref = next((b for b in ctx.baselines if b.rung == "retrieved_few_shot"), ctx.best)
            out.reference = f"rung '{ref.name}'"
            train = pl.read_parquet(ctx.dataset.train_path).get_column("target").to_list()
            by_row = {p.row: p.prediction for p in ref.predictions}
            rows = [p.row for p in ctx.tuned_eval.predictions if p.row in by_row]
            cand = {p.row: p.prediction for p in ctx.tuned_eval.predictions}
            out.rows.append(
                Rows(
                    f"copies a train answer ({settings.ngram}-word run)",
                    "share of outputs",
                    False,
                    copies([by_row[r] for r in rows], train, settings.ngram),
                    copies([cand[r] for r in rows], train, settings.ngram),
                    settings.max_increase,
                )
            )
        if not out.rows and words is None:
            return Measured(
                not_measured="memorisation is measured on generated answers, and the train/selection loss gap needs "
                "a selection split (data.dev or data.dev_fraction)"
            )
        return out
