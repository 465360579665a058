"""Slices: is the candidate worse than the best rung for some part of the eval rows, though better on all of them?

The gate metric per label, per input-length quartile and per value of each declared column
(``data.slice_columns``), candidate vs the best rung on each slice's rows, with paired CIs at the gate's alpha
divided by the number of judged slices (Bonferroni). A slice with fewer than ``min_rows`` rows is reported, not
judged. A metric that is not a mean over rows is sliced as each row's correctness (macro F1) or minus its absolute
error (R2, RMSE).
"""

from __future__ import annotations

from tunegate.guards.base import Guard, Measured, Rows, row_scores
from tunegate.guards.slices.settings import SlicesSettings

MAX_VALUES = 25  # a column with more distinct values is sliced by its most frequent ones


def slice_rows(frame, text_col: str, label_col: str | None, columns: list[str], *, labels: bool, length: bool):
    """{slice name: positions of its rows in ``frame``}: by label, by input-length quartile, by each column's
    values (its most frequent ones)."""
    import numpy as np

    out: dict[str, list[int]] = {}
    if labels and label_col is not None:
        for i, y in enumerate(frame.get_column(label_col).to_list()):
            out.setdefault(f"label={y}", []).append(i)
    if length and frame.height >= 8:
        n_chars = np.array([len(str(t)) for t in frame.get_column(text_col).to_list()])
        edges = np.quantile(n_chars, [0.25, 0.5, 0.75])
        quartile = np.searchsorted(edges, n_chars, side="left")
        bounds = [0, *[int(e) for e in edges], int(n_chars.max())]
        for q in range(4):
            idx = [int(i) for i in np.flatnonzero(quartile == q)]
            if idx:
                out[f"length Q{q + 1} ({bounds[q]}-{bounds[q + 1]} chars)"] = idx
    for col in columns:
        values = [str(v) for v in frame.get_column(col).to_list()]
        counts: dict[str, int] = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        keep = set(sorted(counts, key=lambda v: -counts[v])[:MAX_VALUES])
        for i, v in enumerate(values):
            if v in keep:
                out.setdefault(f"{col}={v}", []).append(i)
    return out


class Slices(Guard):
    def measure(self, settings: SlicesSettings, ctx) -> Measured:
        from tunegate.data import ROW, canonical_columns
        from tunegate.problems import task_type

        best, tuned = ctx.best, ctx.tuned_eval
        frame = ctx.eval_frame()
        text_col, label_col = canonical_columns(ctx.spec.task)
        has_labels = task_type(ctx.spec.task).has_labels
        by_row = {p.row: p for p in best.predictions}
        order = [int(r) for r in frame.get_column(ROW).to_list()]
        if any(r not in by_row for r in order) or len(tuned.predictions) != len(order):
            return Measured(not_measured="the rung's and the candidate's predictions are not on the same eval rows")
        cand_by_row = {p.row: p for p in tuned.predictions}
        refs = [cand_by_row[r].reference for r in order]

        def scores(side) -> tuple[str, list[float]]:
            return row_scores(ctx.spec.task, ctx.metric, [side[r].prediction for r in order], refs)

        (metric, cand), (_, base) = scores(cand_by_row), scores(by_row)
        groups = slice_rows(
            frame,
            text_col,
            label_col if has_labels else None,
            [c for c in ctx.slice_columns if c in frame.columns],
            labels=settings.labels,
            length=settings.length,
        )
        judged = [k for k, idx in groups.items() if len(idx) >= settings.min_rows]
        alpha = ctx.alpha / max(len(judged), 1)
        out = Measured(reference=f"best rung '{best.name}'")
        for name, idx in groups.items():
            big = len(idx) >= settings.min_rows
            out.rows.append(
                Rows(
                    name,
                    metric,
                    True,
                    [base[i] for i in idx],
                    [cand[i] for i in idx],
                    settings.max_drop if big else None,
                    alpha=alpha,
                    note="" if big else f"fewer rows than min_rows ({settings.min_rows})",
                )
            )
        out.rows.sort(key=lambda r: sum(c - b for c, b in zip(r.candidate, r.base)) / max(len(r.base), 1))
        if len(judged) > 1:
            out.warnings.append(
                f"{len(judged)} slices judged: each CI at {100 * (1 - alpha):.2f}% (alpha {ctx.alpha:g} / "
                f"{len(judged)}, Bonferroni)"
            )
        return out
