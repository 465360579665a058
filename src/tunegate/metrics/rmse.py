"""Root mean squared error of numeric predictions (lower is better)."""

import math

import numpy as np

from tunegate.metrics.spec import MetricSpec


def _resample(weights: np.ndarray, predictions: list, references: list) -> np.ndarray:
    sq = (np.asarray(predictions, dtype=np.float64) - np.asarray(references, dtype=np.float64)) ** 2
    return np.sqrt(weights @ sq / weights.sum(axis=1))


SPEC = MetricSpec(
    name="rmse",
    answers=("number",),
    description="root mean squared error (reported beside r2; lower is better, so not a gate metric)",
    higher_is_better=False,
    resample=_resample,
)


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate

    class RMSE(evaluate.Metric):
        """Square root of the mean squared difference between prediction and reference."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Square root of the mean squared difference between prediction and reference.",
                citation="",
                inputs_description="predictions: list of floats; references: list of floats",
                features=datasets.Features(
                    {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                ),
            )

        def _compute(self, predictions, references):
            per = [(p - r) ** 2 for p, r in zip(predictions, references)]
            return {"rmse": math.sqrt(sum(per) / len(per)) if per else 0.0}

    return RMSE()
