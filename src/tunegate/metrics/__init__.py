"""Metrics, each declared once: one module here per metric.

A metric module holds ``SPEC`` (a :class:`MetricSpec`: name, the answer kinds it judges, default per kind,
direction, resampled computation) and ``metric()``, which returns its ``evaluate.Metric``
(defined there, so nothing is fetched from the hub: ``evaluate.load("accuracy")`` would,
and fails offline). ``metric()`` imports evaluate when a score is computed, not when the
specs are read: importing evaluate loads transformers' pipelines (~4 s), which commands
like ``tunegate audit`` or a config check never need. Modules are found by discovery:
adding a metric is adding one module. Config choices and defaults, the per-example view
and the bootstrap read the specs from here.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

import numpy as np

from tunegate.metrics.spec import MetricSpec
from tunegate.problems import task_type

HERE = Path(__file__).parent
_NOT_METRICS = {"spec"}


@functools.cache
def specs() -> dict[str, MetricSpec]:
    """Every metric module's SPEC, by name (module name = metric name)."""
    found = {}
    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name in _NOT_METRICS or info.name.startswith("_"):
            continue
        spec = importlib.import_module(f"{__name__}.{info.name}").SPEC
        if spec.name != info.name:
            raise RuntimeError(f"metric module {info.name}.py declares SPEC.name '{spec.name}'")
        found[spec.name] = spec
    return found


def get(name: str) -> MetricSpec:
    try:
        return specs()[name]
    except KeyError:
        raise KeyError(f"unknown metric '{name}'; known: {', '.join(specs())}") from None


def _answers(task: str) -> str:
    """The answer kind of a task type (what the metrics judge)."""
    return task_type(task).answers


def metrics_for(task: str) -> tuple[str, ...]:
    """Every metric computed for ``task`` (all are reported): those judging its answer kind."""
    kind = _answers(task)
    return tuple(n for n, s in specs().items() if kind in s.answers)


def gate_metrics(task: str) -> tuple[str, ...]:
    """The metrics ``gate.metric`` may name for ``task``."""
    return tuple(n for n in metrics_for(task) if specs()[n].gate)


def default_metric(task: str) -> str:
    kind = _answers(task)
    return next(n for n in metrics_for(task) if kind in specs()[n].default_for)


@functools.lru_cache(maxsize=None)
def load(name: str):
    """The metric's ``evaluate.Metric`` (built once per process)."""
    get(name)
    return importlib.import_module(f"{__name__}.{name}").metric()


def _inputs(answers: str, predictions: list, references: list) -> tuple[list, list]:
    """Predictions and references as the metric modules of an answer kind take them."""
    if answers == "number":
        return [float(p) for p in predictions], [float(r) for r in references]
    if answers == "text":
        return list(predictions), [r if isinstance(r, list) else [r] for r in references]
    return list(predictions), list(references)


def _compute_one(name: str, predictions: list, references: list) -> tuple[float, list[float] | None]:
    spec = get(name)
    preds, refs = _inputs(spec.answers[0], predictions, references)
    out = load(name).compute(predictions=preds, references=refs)
    per = out.get(f"{name}_per_example")
    return float(out[name]), None if per is None else [float(x) for x in per]


def value(name: str, predictions: list, references: list) -> float:
    """One metric on these predictions (e.g. a subset of a model's rows)."""
    return _compute_one(name, predictions, references)[0]


def compute(task: str, predictions: list, references: list) -> tuple[dict[str, float], dict[str, list[float]]]:
    """All metrics of the task: (values, per-example scores where the metric is a mean of them)."""
    values: dict[str, float] = {}
    per_example: dict[str, list[float]] = {}
    for name in metrics_for(task):
        values[name], per = _compute_one(name, predictions, references)
        if per is not None:
            per_example[name] = per
    return values, per_example


def row_scores(name: str, predictions: list, references: list) -> list[float] | None:
    """The per-row scores whose mean is the metric, or None when it is not a mean (it resamples itself)."""
    if get(name).resample is not None:
        return None
    return _compute_one(name, predictions, references)[1]


def resampled(
    name: str,
    weights: np.ndarray,
    *,
    predictions: list,
    references: list,
    per_example: list[float] | None = None,
) -> np.ndarray:
    """The metric under each row of ``weights`` ([B, n] counts of each example in a resample).

    ``per_example`` (the per-row scores, when already computed) saves recomputing them.
    """
    spec = get(name)
    if spec.resample is not None:
        preds, refs = _inputs(spec.answers[0], predictions, references)
        return spec.resample(weights, preds, refs)
    scores = per_example if per_example is not None else row_scores(name, predictions, references)
    s = np.asarray(scores, dtype=np.float64)
    return weights @ s / weights.sum(axis=1)
