"""The one answering path (tunegate/answering.py): what a version records to answer later, the prompt budget,
and the task type's way of answering (scored labels, a number, or text) on a real (tiny) model."""

import pytest

from tunegate.answering import AnswerSpec, answer, prompt_ids
from tunegate.config import parse_config
from tunegate.modeling import load_model
from tunegate.scoring import LMAnswerer


def spec_for(task: str, max_length: int = 48, **data) -> AnswerSpec:
    cfg = parse_config(
        {
            "task": task,
            "data": {"train": "t.csv", **data},
            "method": {"name": "lora", "max_length": max_length},
            "baselines": {"max_new_tokens": 4, "batch_size": 2},
        }
    )
    return AnswerSpec.from_config(cfg)


def test_a_registered_version_answers_with_the_spec_its_run_recorded():
    spec = spec_for("classification", labels={"0": "negative", "1": "positive"})
    again = AnswerSpec.from_meta(spec.meta())
    assert again.task == spec.task and again.labels == {"0": "negative", "1": "positive"}
    assert (again.max_length, again.max_new_tokens, again.prompt) == (48, 4, spec.prompt)


def test_a_long_input_is_cut_to_the_prompt_budget(tiny_tokenizer):
    spec = spec_for("classification", max_length=128, labels=["pos", "neg"])
    builder = spec.builder(tiny_tokenizer)
    budget = spec.input_budget(builder)
    assert 0 < budget < 128
    short, long = prompt_ids(spec, tiny_tokenizer, ["fine", "word " * 400])
    longest_answer = max(len(builder.answer_ids(a)) for a in spec.labels.values())
    assert len(long) + longest_answer <= 128 < len(tiny_tokenizer("word " * 400)["input_ids"])
    assert len(short) < len(long)


@pytest.fixture(scope="module")
def answerer(tiny_model_dir):
    return LMAnswerer(load_model(str(tiny_model_dir)))


@pytest.mark.parametrize(
    "task, data",
    [("classification", {"labels": ["pos", "neg"]}), ("regression", {}), ("generation", {})],
)
def test_each_task_type_answers_its_own_way(task, data, answerer, tiny_tokenizer, float32):
    spec = spec_for(task, max_length=128, **data)
    ids = prompt_ids(spec, tiny_tokenizer, ["a good film", "a dull film", "so so"])
    out = answer(answerer, tiny_tokenizer, spec, ids, fallback=2.5)
    assert len(out.predictions) == 3 and out.stats.n == 3
    if task == "classification":  # scored among the labels, never decoded
        assert out.label_logprobs.shape == (3, 2) and set(out.predictions) <= {"pos", "neg"}
        assert out.stats.output_tokens > 0 and out.values is None
    elif task == "regression":  # a random model writes no number: every answer is the fallback, and counted
        assert out.values == [2.5, 2.5, 2.5] and out.unparsed == 3 and out.predictions == ["2.5"] * 3
    else:  # decoded text, at most max_new_tokens
        assert out.label_logprobs is None and out.values is None
        assert 0 < out.stats.output_tokens <= 3 * 4 and all(isinstance(p, str) for p in out.predictions)
