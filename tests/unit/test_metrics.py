"""Every metric, as declared once in tunegate/metrics/: resampled with unit weights equals compute."""

import numpy as np
import pytest

from tunegate import metrics
from tunegate.config import GateConfig
from tunegate.problems import TASK_TYPES
from tunegate.stats import bootstrap_weights

ROWS = {
    "classification": (["a", "b", "a", "c", "b", "a"], ["a", "b", "b", "c", "a", "a"]),
    "generation": (
        ["the cat sat", "Hello  World", "a dog", "Paris is the capital", "", "no"],
        [["the cat sat down", "a cat"], "hello world", "the dog barked", ["Paris"], "x", "yes"],
    ),
    "regression": (["1.5", "2", "2", "4.5", "4", "3"], ["1", "2", "3", "4", "5", "2.5"]),
}


@pytest.mark.parametrize("name", sorted(metrics.specs()))
def test_resampled_with_unit_weights_equals_compute(name):
    spec = metrics.get(name)
    task = next(n for n, t in TASK_TYPES.items() if t.answers == spec.answers[0])
    preds, refs = ROWS[task]
    values, _ = metrics.compute(task, preds, refs)
    n = len(preds)
    weights = np.vstack([np.ones((1, n)), bootstrap_weights(n, 20, 0)])
    got = metrics.resampled(name, weights, predictions=preds, references=refs)
    assert got[0] == pytest.approx(values[name])
    # a resample equals the metric computed on the rows it drew, repeated
    rows = np.repeat(np.arange(n), weights[1].astype(int))
    again, _ = metrics.compute(task, [preds[i] for i in rows], [refs[i] for i in rows])
    assert got[1] == pytest.approx(again[name], abs=1e-9)


def test_config_choices_and_defaults_come_from_the_declarations():
    for task in TASK_TYPES:
        default = metrics.default_metric(task)
        assert metrics.get(default).gate and TASK_TYPES[task].answers in metrics.get(default).answers
        assert default in metrics.gate_metrics(task)
    assert set(metrics.gate_metrics("regression")) == {"r2"}  # mae/rmse: lower is better, reported only
    with pytest.raises(ValueError, match="did you mean 'accuracy'"):
        GateConfig(metric="acuracy")
