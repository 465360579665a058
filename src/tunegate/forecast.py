"""Would more labelled rows make tuning pay off? The method's learning curve on nested fractions of train.

The method is trained on nested subsets of the train rows (each contains the smaller ones;
for classification each keeps the label proportions) and scored on the same eval rows. The
error of the gate metric (1 - metric) is fitted as an inverse power law of the rows,
``error = b * rows^-c`` (the usual shape of learning curves: Hestness et al. 2017, Mukherjee
et al. 2003), by least squares in log-log space. Its uncertainty is a bootstrap over the
eval rows, resampled jointly for every fraction and the best baseline (the same rows judge
all of them), the fit redone on each resample. The forecast is the number of rows at which
the curve reaches the best baseline + ``gate.min_gain``, with a 90% interval, and what
training on them would cost; a curve whose slope is not clearly above zero is called flat.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import polars as pl

from tunegate import metrics
from tunegate.config import ForecastConfig, GateSpec
from tunegate.data import canonical_columns
from tunegate.errors import ConfigError
from tunegate.evaluation import per_example_view
from tunegate.problems import task_type
from tunegate.records import DatasetRef, EvalResult, ForecastResult, TuneResult
from tunegate.registry import atomic_write_text
from tunegate.stats import bootstrap_weights

FOLDER = "forecast"
LEVEL = 0.90  # the interval reported for the curve, the rows needed and the slope


def nested_rows(train: pl.DataFrame, fractions: list[float], *, seed: int, task: str) -> list[list[int]]:
    """Row positions of nested subsets of ``train``, one per fraction (smallest first).

    One seeded order is cut into prefixes, so each subset contains the smaller ones; for
    classification the order interleaves the labels in proportion (each label's rows in
    random order, placed at evenly spaced ranks), so every prefix keeps the label shares.
    """
    n = train.height
    rng = random.Random(seed)
    if task_type(task).has_labels:
        labels = train.get_column(canonical_columns(task)[1]).to_list()
        by_label: dict[str, list[int]] = {}
        for i, y in enumerate(labels):
            by_label.setdefault(y, []).append(i)
        keyed = []
        for rows in by_label.values():
            rng.shuffle(rows)
            keyed += [((k + rng.random()) / len(rows), i) for k, i in enumerate(rows)]
        order = [i for _, i in sorted(keyed)]
    else:
        order = list(range(n))
        rng.shuffle(order)
    subsets = [sorted(order[: max(1, round(f * n))]) for f in sorted(fractions)]
    if task_type(task).has_labels:  # the smallest subset must still hold every label
        smallest = {labels[i] for i in subsets[0]}
        if len(smallest) < len(by_label):
            need = max(len(by_label) / n, max(1 / len(rows) for rows in by_label.values()))
            raise ConfigError(
                f"forecast.fractions: the smallest, {min(fractions)}, keeps {len(subsets[0])} of the {n} train rows "
                f"and {len(smallest)} of the {len(by_label)} labels; a model trained on it cannot answer the others. "
                f"Raise it to at least {min(1.0, need):.3g}"
            )
    return subsets


def subset(dataset: DatasetRef, train: pl.DataFrame, rows: list[int], folder: Path) -> DatasetRef:
    """``dataset`` with its train rows cut to ``rows`` (written once to ``folder``); its own data hash, so caches
    and checkpoints never mix subsets."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"train-{len(rows)}.parquet"
    if not path.is_file():
        train[rows].write_parquet(path)
    return dataset.model_copy(
        update={"train_path": str(path), "n_train": len(rows), "data_hash": f"{dataset.data_hash}:rows-{len(rows)}"}
    )


def _fit(rows: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """(b, c) of error = b * rows^-c, least squares in log-log space (the error floored at 1e-4)."""
    err = np.clip(1.0 - values, 1e-4, None)
    slope, intercept = np.polyfit(np.log(rows), np.log(err), 1)
    return float(np.exp(intercept)), float(-slope)


def _at(b: float, c: float, rows: float) -> float:
    return 1.0 - b * rows ** (-c)


def _rows_for(b: float, c: float, target: float) -> float:
    """Rows at which the fitted curve reaches ``target`` (inf: never, the curve does not rise to it)."""
    if target >= 1.0 or c <= 1e-6:
        return float("inf")
    return float((b / (1.0 - target)) ** (1.0 / c))


def learning_curve(
    spec: GateSpec,
    fc: ForecastConfig,
    points: list[tuple[int, TuneResult, EvalResult]],
    best: EvalResult,
    *,
    price_per_hour: float,
) -> ForecastResult:
    """Fit the curve of ``points`` (rows, training, its evaluation on the eval rows), compare it with ``best`` (the
    best baseline) + ``gate.min_gain``, and say how many rows would be expected to clear it and at what cost."""
    metric, gate = spec.metric, spec.gate
    refs = [p.reference for p in best.predictions]
    for _, _, e in points:
        if [p.row for p in e.predictions] != [p.row for p in best.predictions]:
            raise RuntimeError("the forecast's models were not scored on the same eval rows as the baseline")
    rows = np.array([n for n, _, _ in points], dtype=float)
    w = np.vstack([np.ones((1, len(refs))), bootstrap_weights(len(refs), fc.resamples, gate.seed)])

    def resampled(r: EvalResult) -> np.ndarray:
        view = per_example_view(r, metric)
        return metrics.resampled(
            metric, w, per_example=view["per_example"], predictions=view["predictions"], references=refs
        )

    curve = np.stack([resampled(e) for _, _, e in points], axis=1)  # [1 + resamples, fractions]
    base = resampled(best)
    target = base + gate.min_gain
    fits = np.array([_fit(rows, curve[i]) for i in range(len(curve))])  # [1 + resamples, (b, c)]
    b0, c0 = fits[0]
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    largest = rows.max()
    horizon = largest * fc.max_multiple
    predictions = _curve_points(fits, rows, max_multiple=fc.max_multiple)
    c_lo, c_hi = np.quantile(fits[1:, 1], [lo_q, hi_q])
    gain_2x = np.array([_at(b, c, 2 * largest) - _at(b, c, largest) for b, c in fits[1:]])
    flat = bool(c_lo <= 0.0 or np.quantile(gain_2x, hi_q) < 0.005)
    observed = _observed(curve, points, gate.confidence)
    verdict, summary, rows_needed, cost = _verdict(
        points,
        best=best,
        metric=metric,
        gate=gate,
        curve=curve,
        base=base,
        target=target,
        fits=fits,
        needed=_rows_for(b0, c0, float(target[0])),
        needed_all=np.array([_rows_for(b, c, t) for (b, c), t in zip(fits[1:], target[1:])]),
        gain_2x=gain_2x,
        flat=flat,
        horizon=horizon,
        predictions=predictions,
        max_multiple=fc.max_multiple,
        price_per_hour=price_per_hour,
    )
    return ForecastResult(
        method=points[-1][1].method,
        metric=metric,
        points=observed,
        baseline=best.name,
        baseline_metric=float(base[0]),
        target=float(target[0]),
        fit={
            "b": float(b0),
            "c": float(c0),
            "c_low": float(c_lo),
            "c_high": float(c_hi),
            "model": "1 - metric = b * rows^-c",
        },
        predictions=predictions,
        rows_needed=rows_needed,
        cost_needed=cost,
        flat=flat,
        verdict=verdict,
        summary=summary,
    )


def _curve_points(fits: np.ndarray, rows: np.ndarray, *, max_multiple: float) -> list[dict]:
    """The fitted curve at the observed row counts, at 2x/4x/10x the largest and at the horizon, with the
    bootstrap's 90% interval."""
    b0, c0 = fits[0]
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    largest = rows.max()
    horizon = largest * max_multiple
    grid = sorted({*rows.tolist(), *(largest * m for m in (2, 4, 10) if m <= max_multiple), horizon})
    out = []
    for n in grid:
        vals = np.array([_at(b, c, n) for b, c in fits[1:]])
        out.append(
            {
                "rows": int(round(n)),
                "metric": _at(b0, c0, n),
                "low": float(np.quantile(vals, lo_q)),
                "high": float(np.quantile(vals, hi_q)),
                "observed": bool(n in rows),
            }
        )
    return out


def _observed(curve: np.ndarray, points: list, confidence: float) -> list[dict]:
    """Each trained fraction's metric with its bootstrap CI and training time."""
    return [
        {
            "rows": n,
            "metric": float(curve[0, j]),
            "ci_low": float(np.quantile(curve[1:, j], (1 - confidence) / 2)),
            "ci_high": float(np.quantile(curve[1:, j], 1 - (1 - confidence) / 2)),
            "train_seconds": t.train_seconds,
        }
        for j, (n, t, _) in enumerate(points)
    ]


def _verdict(
    points: list,
    *,
    best: EvalResult,
    metric: str,
    gate,
    curve: np.ndarray,
    base: np.ndarray,
    target: np.ndarray,
    fits: np.ndarray,
    needed: float,
    needed_all: np.ndarray,
    gain_2x: np.ndarray,
    flat: bool,
    horizon: float,
    predictions: list[dict],
    max_multiple: float,
    price_per_hour: float,
) -> tuple[str, str, dict | None, dict | None]:
    """reached / flat / reachable / out_of_reach, in words; the rows needed and what training on them costs."""
    b0, c0 = fits[0]
    lo_q, hi_q = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    largest = max(n for n, _, _ in points)
    per_row_s = points[-1][1].train_seconds / points[-1][0]
    rows_needed = cost = None
    name = points[-1][1].method
    base_words = f"the best baseline {best.name} ({metric} {base[0]:.3f}) + min_gain {gate.min_gain:+.3f}"
    if curve[0, -1] >= target[0]:
        verdict = "reached"
        summary = (
            f"{name} already scores {curve[0, -1]:.3f} with {int(largest)} rows, at or above {base_words}; whether "
            "that gain is established is the gate's question (`tunegate run`)"
        )
    elif flat:
        verdict = "flat"
        summary = (
            f"the curve is flat: doubling the {int(largest)} rows is expected to add {np.median(gain_2x):+.3f} "
            f"{metric} (90% interval up to {np.quantile(gain_2x, hi_q):+.3f}); more data is unlikely to make {name} "
            f"beat {base_words}"
        )
    elif needed <= horizon:
        verdict = "reachable"
        lo, hi = np.quantile(needed_all, [lo_q, hi_q])
        rows_needed = {"median": float(needed), "low": float(lo), "high": float(hi)}
        seconds = per_row_s * needed
        cost = {"train_seconds": seconds, "usd": seconds / 3600 * price_per_hour}
        high = "more than the horizon" if hi > horizon else f"{hi:,.0f}"
        summary = (
            f"{name} is expected to reach {base_words} at about {needed:,.0f} labelled train rows (90% interval "
            f"{lo:,.0f} to {high}; now {int(largest)}); training on them: about {seconds / 60:.1f} min "
            f"(${cost['usd']:.4f} at ${price_per_hour:g}/h)"
        )
    else:
        verdict = "out_of_reach"
        summary = (
            f"at this curve {name} would not reach {base_words} within {max_multiple:g}x the current rows "
            f"({int(horizon):,}): expected {_at(b0, c0, horizon):.3f} there (90% interval "
            f"{predictions[-1]['low']:.3f} to {predictions[-1]['high']:.3f})"
        )
    return verdict, summary, rows_needed, cost


def write(result: ForecastResult, run_dir: Path) -> ForecastResult:
    """forecast.json, forecast.md and forecast.png in the run folder."""
    run_dir = Path(run_dir)
    png = run_dir / "forecast.png"
    save_plot(result, png)
    md = render(result)
    result = result.model_copy(update={"report_md": str(run_dir / "forecast.md"), "plot_png": str(png)})
    atomic_write_text(run_dir / "forecast.md", md)
    atomic_write_text(run_dir / "forecast.json", json.dumps(result.model_dump(mode="json"), indent=2))
    return result


def render(r: ForecastResult) -> str:
    m = r.metric
    lines = [
        f"# Forecast: {r.method} with more labelled rows",
        "",
        f"**{r.verdict.replace('_', ' ').capitalize()}:** {r.summary}.",
        "",
        f"Target: {m} {r.target:.3f} = the best baseline {r.baseline} ({r.baseline_metric:.3f}) + gate.min_gain. "
        f"Curve: {r.fit['model']}, fitted in log-log space; c = {r.fit['c']:.3f} (90% interval {r.fit['c_low']:.3f} "
        f"to {r.fit['c_high']:.3f}; c near 0 is a flat curve). Intervals: a bootstrap over the eval rows, refitted per "
        "resample.",
        "",
        "| train rows | " + m + " | 90% interval | measured? |",
        "|---|---|---|---|",
    ]
    measured = {p["rows"]: p for p in r.points}
    for p in r.predictions:
        got = measured.get(p["rows"])
        value = (
            f"{got['metric']:.3f} [{got['ci_low']:.3f}, {got['ci_high']:.3f}] (fit {p['metric']:.3f})"
            if got
            else (f"{p['metric']:.3f}")
        )
        lines.append(
            f"| {p['rows']:,} | {value} | {p['low']:.3f} to {p['high']:.3f} | "
            f"{'measured, trained ' + format(got['train_seconds'], '.0f') + ' s' if got else 'forecast'} |"
        )
    lines += ["", "![learning curve](forecast.png)", ""]
    return "\n".join(lines) + "\n"


def save_plot(r: ForecastResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    xs = [p["rows"] for p in r.predictions]
    ax.fill_between(xs, [p["low"] for p in r.predictions], [p["high"] for p in r.predictions], alpha=0.2,
                    label="90% interval")  # fmt: skip
    ax.plot(xs, [p["metric"] for p in r.predictions], lw=2, label="fitted curve")
    pts = r.points
    ax.errorbar(
        [p["rows"] for p in pts],
        [p["metric"] for p in pts],
        yerr=[[p["metric"] - p["ci_low"] for p in pts], [p["ci_high"] - p["metric"] for p in pts]],
        fmt="o",
        color="black",
        capsize=3,
        label="measured",
    )
    ax.axhline(r.baseline_metric, color="tab:gray", ls="--", lw=1, label=f"best baseline ({r.baseline})")
    ax.axhline(r.target, color="tab:red", ls=":", lw=1, label="target (+ min_gain)")
    if r.rows_needed:
        ax.axvline(r.rows_needed["median"], color="tab:red", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("labelled train rows")
    ax.set_ylabel(r.metric)
    ax.set_title(f"Learning curve: {r.method} ({r.verdict.replace('_', ' ')})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
