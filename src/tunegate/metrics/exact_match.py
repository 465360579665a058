"""Exact match after whitespace/case normalization, against any of the references."""

from tunegate.metrics.spec import MetricSpec

SPEC = MetricSpec(
    name="exact_match",
    answers=("text",),
    description="share of rows whose output equals a reference (case and whitespace ignored)",
)


def _norm(s):
    return " ".join(s.lower().split())


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate

    class ExactMatch(evaluate.Metric):
        """Share of predictions equal (normalized) to one of their references."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Share of predictions equal (normalized) to one of their references.",
                citation="",
                inputs_description="predictions: list of strings; references: list of lists of strings",
                features=datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
            )

        def _compute(self, predictions, references):
            per = [float(any(_norm(p) == _norm(r) for r in refs)) for p, refs in zip(predictions, references)]
            return {"exact_match": sum(per) / len(per) if per else 0.0, "exact_match_per_example": per}

    return ExactMatch()
