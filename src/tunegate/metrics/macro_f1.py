"""Macro-averaged F1 over the labels (thin wrapper over scikit-learn)."""

import numpy as np

from tunegate.metrics.spec import MetricSpec


def _resample(weights: np.ndarray, predictions: list, references: list) -> np.ndarray:
    """Per-label F1 from weighted counts; a label absent from a resample does not count (as in scikit-learn)."""
    t, p = np.array(references), np.array(predictions)
    f1s, present = [], []
    for k in sorted(set(references) | set(predictions)):
        tp = weights @ ((t == k) & (p == k)).astype(np.float64)
        fp = weights @ ((t != k) & (p == k)).astype(np.float64)
        fn = weights @ ((t == k) & (p != k)).astype(np.float64)
        denom = 2 * tp + fp + fn
        f1s.append(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0))
        present.append(denom > 0)
    f1s, present = np.stack(f1s), np.stack(present)
    return (f1s * present).sum(axis=0) / np.maximum(present.sum(axis=0), 1)


SPEC = MetricSpec(
    name="macro_f1",
    answers=("labels",),
    description="unweighted mean of per-label F1 (rare labels count as much as common ones)",
    resample=_resample,
)


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate
    from sklearn.metrics import f1_score

    class MacroF1(evaluate.Metric):
        """Unweighted mean of per-label F1."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Unweighted mean of per-label F1.",
                citation="scikit-learn f1_score(average='macro')",
                inputs_description="predictions, references: lists of label strings",
                features=datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
                ),
            )

        def _compute(self, predictions, references):
            return {"macro_f1": float(f1_score(references, predictions, average="macro", zero_division=0))}

    return MacroF1()
