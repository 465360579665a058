"""Macro-averaged F1 over the labels (thin wrapper over scikit-learn)."""

import datasets
import evaluate
from sklearn.metrics import f1_score


class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Unweighted mean of per-label F1.",
            citation="scikit-learn f1_score(average='macro')",
            inputs_description="predictions, references: lists of label strings",
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references):
        return {"macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0))}
