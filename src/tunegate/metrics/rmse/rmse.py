"""Root mean squared error of numeric predictions (lower is better)."""

import math

import datasets
import evaluate


class RMSE(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Square root of the mean squared difference between prediction and reference.",
            citation="",
            inputs_description="predictions: list of floats; references: list of floats",
            features=datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}),
        )

    def _compute(self, predictions, references):
        per = [(p - r) ** 2 for p, r in zip(predictions, references)]
        return {"rmse": math.sqrt(sum(per) / len(per)) if per else 0.0}
