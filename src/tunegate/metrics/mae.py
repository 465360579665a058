"""Mean absolute error of numeric predictions (lower is better)."""

from tunegate.metrics.spec import MetricSpec

SPEC = MetricSpec(
    name="mae",
    answers=("number",),
    description="mean absolute error (reported beside r2; lower is better, so not a gate metric)",
    higher_is_better=False,
)


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate

    class MAE(evaluate.Metric):
        """Mean absolute difference between prediction and reference."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Mean absolute difference between prediction and reference.",
                citation="",
                inputs_description="predictions: list of floats; references: list of floats",
                features=datasets.Features(
                    {"predictions": datasets.Value("float64"), "references": datasets.Value("float64")}
                ),
            )

        def _compute(self, predictions, references):
            per = [abs(p - r) for p, r in zip(predictions, references)]
            return {"mae": sum(per) / len(per) if per else 0.0, "mae_per_example": per}

    return MAE()
