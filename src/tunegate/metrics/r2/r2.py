"""Coefficient of determination of numeric predictions (scikit-learn's r2_score)."""

import datasets
import evaluate
from sklearn.metrics import r2_score


class R2(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="1 - SSE/SST: share of the target's variance the predictions explain (1 is perfect, 0 = predicting the mean).",
            citation="",
            inputs_description="predictions: list of floats; references: list of floats",
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        return {"r2": float(r2_score(references, predictions)) if len(references) > 1 else 0.0}
