"""Accuracy: share of predictions equal to the reference (thin wrapper over scikit-learn)."""

import datasets
import evaluate
from sklearn.metrics import accuracy_score


class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Fraction of exact label matches.",
            citation="scikit-learn accuracy_score",
            inputs_description="predictions, references: lists of label strings",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": float(accuracy_score(references, predictions))}
