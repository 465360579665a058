"""Metrics through ``evaluate`` with the metric modules shipped in this folder.

``evaluate.load("accuracy")`` fetches its script from the hub, which fails offline;
loading a local module folder works everywhere. Each module is a thin wrapper over
scikit-learn or rouge-score. :func:`resampled` recomputes a metric under bootstrap
resampling weights without calling the module thousands of times.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
CLASSIFICATION = ("accuracy", "macro_f1")
GENERATION = ("rouge_l", "exact_match", "answer_in_output")
REGRESSION = ("r2", "mae", "rmse")  # the gate uses r2 (higher is better); mae/rmse are reported


def metrics_for(task: str) -> tuple[str, ...]:
    return {"classification": CLASSIFICATION, "generation": GENERATION, "regression": REGRESSION}[task]


@functools.lru_cache(maxsize=None)
def load(name: str):
    import evaluate

    folder = HERE / name
    if not (folder / f"{name}.py").is_file():
        raise KeyError(f"unknown metric '{name}'; known: {', '.join(CLASSIFICATION + GENERATION + REGRESSION)}")
    return evaluate.load(str(folder))


def compute(task: str, predictions: list[str], references: list) -> tuple[dict[str, float], dict[str, list[float]]]:
    """All metrics of the task: (values, per-example scores where the metric has them)."""
    values: dict[str, float] = {}
    per_example: dict[str, list[float]] = {}
    if task == "regression":
        predictions, refs = [float(p) for p in predictions], [float(r) for r in references]
    elif task == "classification":
        refs = references
    else:
        refs = [r if isinstance(r, list) else [r] for r in references]
    for name in metrics_for(task):
        out = load(name).compute(predictions=predictions, references=refs)
        values[name] = float(out[name])
        if f"{name}_per_example" in out:
            per_example[name] = [float(x) for x in out[f"{name}_per_example"]]
    if task == "classification":
        per_example["accuracy"] = [float(p == r) for p, r in zip(predictions, references)]
    return values, per_example


def resampled(name: str, weights: np.ndarray, *, per_example: list[float] | None = None,
              predictions: list[str] | None = None, references: list[str] | None = None) -> np.ndarray:
    """The metric under each row of ``weights`` ([B, n] counts of each example in a resample)."""
    if name in ("accuracy", "rouge_l", "exact_match", "answer_in_output"):
        s = np.asarray(per_example, dtype=np.float64)
        return weights @ s / weights.sum(axis=1)
    if name == "macro_f1":
        labels = sorted(set(references) | set(predictions))
        t = np.array(references)
        p = np.array(predictions)
        f1s, present = [], []
        for k in labels:
            tp = weights @ ((t == k) & (p == k)).astype(np.float64)
            fp = weights @ ((t != k) & (p == k)).astype(np.float64)
            fn = weights @ ((t == k) & (p != k)).astype(np.float64)
            denom = 2 * tp + fp + fn
            f1s.append(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0))
            present.append(denom > 0)  # a label absent from the resample does not count (as in scikit-learn)
        f1s, present = np.stack(f1s), np.stack(present)
        return (f1s * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1)
    if name == "r2":
        y = np.array([float(r) for r in references])
        p = np.array([float(x) for x in predictions])
        total = weights.sum(axis=1)
        mean = weights @ y / total
        sst = weights @ (y**2) - total * mean**2
        sse = weights @ ((y - p) ** 2)
        return 1.0 - np.divide(sse, sst, out=np.zeros_like(sse), where=sst > 1e-12)
    raise KeyError(name)
