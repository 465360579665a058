"""Accuracy: share of predictions equal to the reference (thin wrapper over scikit-learn)."""

from tunegate.metrics.spec import MetricSpec

SPEC = MetricSpec(
    name="accuracy",
    answers=("labels",),
    default_for=("labels",),
    description="share of eval rows whose predicted label is the reference label",
)


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate
    from sklearn.metrics import accuracy_score

    class Accuracy(evaluate.Metric):
        """The share of exact label matches; per row 1 or 0."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Fraction of exact label matches.",
                citation="scikit-learn accuracy_score",
                inputs_description="predictions, references: lists of label strings",
                features=datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
                ),
            )

        def _compute(self, predictions, references):
            per = [float(p == r) for p, r in zip(predictions, references)]
            return {"accuracy": float(accuracy_score(references, predictions)), "accuracy_per_example": per}

    return Accuracy()
