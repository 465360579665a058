"""Evaluation (tunegate/evaluation.py): a calibrated twin re-uses its rung's scores (no re-scoring) with the label
prior corrected, the bootstrap's view of one side, and the training set built with the evaluation's prompts."""

import math

import polars as pl
import pytest

from tunegate.answering import AnswerSpec
from tunegate.config import parse_config
from tunegate.evaluation import calibrated, per_example_view, training_set
from tunegate.records import EvalResult, Prediction, Selection

CFG = parse_config(
    {
        "task": "classification",
        "data": {"train": "t.csv", "labels": ["pos", "neg"]},
        "method": {"name": "lora", "max_length": 256},
    }
)
SPEC = AnswerSpec.from_config(CFG)


def scored(name: str, rows: list[tuple[str, float, float]]) -> list[Prediction]:
    """Predictions with label log-probs (pos, neg); the prediction is the argmax."""
    return [
        Prediction(row=i, prediction="pos" if lp >= ln else "neg", reference=ref, scores={"pos": lp, "neg": ln})
        for i, (ref, lp, ln) in enumerate(rows)
    ]


def base_result() -> EvalResult:
    # a model biased to 'pos': every row scores pos higher, by a margin that still orders the rows
    rows = [("pos", -0.1, -2.5), ("pos", -0.2, -2.5), ("neg", -0.6, -0.9), ("neg", -0.7, -0.8)]
    preds = scored("zero_shot", rows)
    return EvalResult(
        name="zero_shot",
        kind="baseline",
        metrics={"accuracy": 0.5},
        predictions=preds,
        n=4,
        prompt_tokens_per_request=30,
        latency_ms_per_request=5,
        examples_per_s=200,
        seconds=0.02,
        batch_size=4,
        setup_seconds=1.0,
        rung="zero_shot",
        selection=Selection(metrics={"accuracy": 0.5}, predictions=preds[:2], n=2),
    )


def test_a_calibrated_twin_shifts_the_same_scores_and_costs_no_rescoring():
    base = base_result()
    offset = [-1.0, 1.0]  # take 1 nat from pos, give it to neg
    twin = calibrated(base, spec=SPEC, name="zero_shot_calibrated", offset=offset, setup_seconds=2.0, details={"x": 1})
    assert [p.prediction for p in twin.predictions] == ["pos", "pos", "neg", "neg"]
    assert twin.metrics["accuracy"] == 1.0 and base.metrics["accuracy"] == 0.5
    row = twin.predictions[2].scores  # log-softmax over the labels after the offset
    assert math.exp(row["pos"]) + math.exp(row["neg"]) == pytest.approx(1.0, abs=1e-3)
    assert twin.setup_seconds == 3.0 and twin.latency_ms_per_request == base.latency_ms_per_request
    assert twin.details["calibrated_from"] == "zero_shot" and twin.details["label_offset"] == {"pos": -1.0, "neg": 1.0}
    assert twin.rung == "zero_shot" and twin.selection.n == 2  # described as its rung; the selection split shifted too


def test_the_bootstraps_view_of_one_side():
    view = per_example_view(base_result(), "accuracy")
    assert view["predictions"] == ["pos", "pos", "pos", "pos"] and view["per_example"] == [1.0, 1.0, 0.0, 0.0]
    assert per_example_view(base_result(), "macro_f1")["per_example"] is None  # it resamples itself


def test_the_training_set_uses_the_task_types_answers(tiny_tokenizer):
    train = pl.DataFrame({"text": ["good", "bad", "fine"], "label": ["pos", "neg", "pos"]})
    data = training_set(SPEC, tiny_tokenizer, train, model_sha="m", data_hash="d", train_on="all")
    assert data.label_index == [0, 1, 0] and data.targets is None and len(data) == 3
    pos_ids = data.answer_ids[0]
    assert tiny_tokenizer.decode(pos_ids).strip().startswith("pos")  # the label's answer word, as scored
    reg = parse_config({"task": "regression", "data": {"train": "t.csv"}, "method": {"name": "lora", "max_length": 64}})
    numbers = training_set(
        AnswerSpec.from_config(reg),
        tiny_tokenizer,
        pl.DataFrame({"text": ["a", "b"], "label": [" 2.5", "3"]}),
        model_sha="m",
        data_hash="d",
        train_on="all",
    )
    assert numbers.targets == [2.5, 3.0] and numbers.label_index is None
    assert tiny_tokenizer.decode(numbers.answer_ids[0]).startswith("2.5")  # the number as written, stripped
