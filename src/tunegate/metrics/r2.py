"""Coefficient of determination of numeric predictions (scikit-learn's r2_score)."""

import numpy as np

from tunegate.metrics.spec import MetricSpec


def _resample(weights: np.ndarray, predictions: list, references: list) -> np.ndarray:
    """1 - SSE/SST on each resample, from weighted sums (not a mean of per-row scores)."""
    y, p = np.asarray(references, dtype=np.float64), np.asarray(predictions, dtype=np.float64)
    total = weights.sum(axis=1)
    mean = weights @ y / total
    sst = weights @ (y**2) - total * mean**2
    sse = weights @ ((y - p) ** 2)
    return 1.0 - np.divide(sse, sst, out=np.zeros_like(sse), where=sst > 1e-12)


SPEC = MetricSpec(
    name="r2",
    answers=("number",),
    default_for=("number",),
    description="1 - SSE/SST: the share of the target's variance the predictions explain (0 = predicting the mean)",
    resample=_resample,
)


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate
    from sklearn.metrics import r2_score

    class R2(evaluate.Metric):
        """1 - SSE/SST of numeric predictions."""

        def _info(self):
            return evaluate.MetricInfo(
                description="1 - SSE/SST: share of the target's variance the predictions explain (1 is perfect, "
                "0 = the mean).",
                citation="",
                inputs_description="predictions: list of floats; references: list of floats",
                features=datasets.Features(
                    {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                ),
            )

        def _compute(self, predictions, references):
            return {"r2": float(r2_score(references, predictions)) if len(references) > 1 else 0.0}

    return R2()
