"""ROUGE-L F-measure, each prediction scored against all of its references (max), via rouge-score."""

from tunegate.metrics.spec import MetricSpec

SPEC = MetricSpec(
    name="rouge_l",
    answers=("text",),
    default_for=("text",),
    description="mean over rows of the best ROUGE-L F1 against any reference",
)


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate
    from rouge_score import rouge_scorer

    class RougeL(evaluate.Metric):
        """Mean over examples of the best ROUGE-L F1 against any reference."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Mean over examples of the best ROUGE-L F1 against any reference.",
                citation="Lin (2004); google-research rouge-score",
                inputs_description="predictions: list of strings; references: list of lists of strings",
                features=datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
            )

        def _compute(self, predictions, references):
            scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
            per = [
                max(scorer.score(ref, pred)["rougeL"].fmeasure for ref in refs) if refs else 0.0
                for pred, refs in zip(predictions, references)
            ]
            return {"rouge_l": sum(per) / len(per) if per else 0.0, "rouge_l_per_example": per}

    return RougeL()
