"""Answer in output: the share of generations that contain one of their references.

Both sides are normalized as in SQuAD (lower case, punctuation and the articles
a/an/the removed, whitespace collapsed) and the reference must appear as whole
words. The usual accuracy for question answering with generative models, which
answer in full sentences ("The observatory was founded by Ilse Dravenko.") where
ROUGE-L or exact match against a short answer ("Ilse Dravenko") penalize the
extra words.
"""

import re
import string

from tunegate.metrics.spec import MetricSpec

SPEC = MetricSpec(
    name="answer_in_output",
    answers=("text",),
    description="share of answers containing a reference (normalized, whole words): for question answering",
)

_PUNCT = str.maketrans("", "", string.punctuation)


def _norm(s):
    s = s.lower().translate(_PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _contains(prediction, reference):
    ref = _norm(reference)
    return bool(ref) and f" {ref} " in f" {_norm(prediction)} "


def metric():
    """The ``evaluate.Metric`` that computes it. Its libraries are imported here, when a score is computed:
    importing evaluate takes seconds (it loads transformers' pipelines) that reading the SPEC must not cost."""
    import datasets
    import evaluate

    class AnswerInOutput(evaluate.Metric):
        """Share of predictions that contain (normalized, whole words) one of their references."""

        def _info(self):
            return evaluate.MetricInfo(
                description="Share of predictions that contain (normalized, whole words) one of their references.",
                citation="",
                inputs_description="predictions: list of strings; references: list of lists of strings",
                features=datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
            )

        def _compute(self, predictions, references):
            per = [float(any(_contains(p, r) for r in refs)) for p, refs in zip(predictions, references)]
            return {"answer_in_output": sum(per) / len(per) if per else 0.0, "answer_in_output_per_example": per}

    return AnswerInOutput()
