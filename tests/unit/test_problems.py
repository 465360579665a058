"""Task types as classes with capabilities: a contract every registered type meets, and a type defined here that
goes through validation, the ladder, a method and the gate with no other edit."""

from __future__ import annotations

import pytest

from tests.conftest import make_config
from tunegate import metrics, stages
from tunegate.config import DataConfig, load_config, parse_config
from tunegate.errors import ConfigError
from tunegate.ladder.core import baseline_rungs
from tunegate.methods import applicable_methods
from tunegate.problems import ANSWER_KINDS, TASK_TYPES, TaskType, register_task_type, task_type, unregister_task_type
from tunegate.records import GateInputs
from tunegate.schemas import schema_for

# each built-in type: its answer kind and the methods that apply to it
TYPES = {
    "classification": ("labels", {"lora", "qlora", "prompt_tuning", "linear_probe"}),
    "generation": ("text", {"lora", "qlora", "prompt_tuning"}),
    "regression": ("number", {"lora", "qlora", "prompt_tuning", "linear_probe"}),
}


def test_every_registered_task_type_is_in_the_contract_table():
    assert list(TASK_TYPES) == list(TYPES)


@pytest.mark.parametrize("name", list(TYPES))
def test_task_type_contract(name):
    t = task_type(name)
    answers, methods = TYPES[name]
    assert t.name == name and t.answers == answers and t.answers in ANSWER_KINDS
    assert set(applicable_methods(name)) == methods
    assert metrics.metrics_for(name) and metrics.default_metric(name) in metrics.gate_metrics(name)
    assert len(t.columns) == 2 and all(isinstance(c, str) for c in t.columns)
    assert all(isinstance(c, str) for c in t.source_columns(DataConfig(train="x.csv")))
    assert schema_for(t.answers, ["a", "b"] if t.has_labels else None) is not None
    if t.has_labels:  # trained to write the label's answer word
        assert t.target_text("a", {"a": "alpha"}) == "alpha"
    else:  # the reference as written
        assert t.target_text(" 3.5 ", {}) == "3.5"
    assert sum([t.scored, t.generates, t.numeric]) == 1
    cfg = parse_config({"task": name, "data": {"train": "t.csv"}})
    assert cfg.task_type is t and cfg.gate_metric == metrics.default_metric(name)


def test_an_unknown_task_type_names_the_registered_ones():
    with pytest.raises(ConfigError, match="task: 'clasification' is not a task type; did you mean 'classification'"):
        parse_config({"task": "clasification", "data": {"train": "t.csv"}})
    with pytest.raises(KeyError, match="unknown task type 'nope'; registered: classification, generation, regression"):
        task_type("nope")


class Topic(TaskType):
    """A task type defined here: name the topic among a label set, with its own instruction."""

    name = "topic"
    description = "name the topic"
    answers = "labels"
    default_instruction = "What is the topic of the input? Answer with one of: {labels}."


@pytest.fixture
def topic():
    register_task_type(Topic())
    try:
        yield
    finally:
        unregister_task_type("topic")
    assert "topic" not in TASK_TYPES


def test_a_new_task_type_needs_no_edit_outside_its_module(tmp_path, tiny_model_dir, toy_data, topic):
    """Registered here: a config value, validated (labels checked), the ladder with calibrated twins and the
    type's own instruction in every prompt, LoRA trained on it, and the gate deciding on its default metric."""
    cfg = load_config(
        make_config(tmp_path, tiny_model_dir, toy_data, task="topic", gate={"bootstrap_samples": 200, "min_gain": -1})
    )
    assert cfg.gate_metric == "accuracy" and "linear_probe" in applicable_methods("topic")
    run = stages.prepare_run(cfg)
    validation = stages.validate_data(cfg, run)
    assert validation.ok, validation.summary
    rungs = baseline_rungs(cfg.baselines, cfg.ladder_context())
    assert "zero_shot_calibrated" in [r.name for r in rungs]
    results = {}
    for r in rungs:
        results[r.name] = stages.evaluate_baseline(
            cfg, run, validation.dataset, r, results[r.base.name] if r.base else None
        )
    tuned = stages.tune(cfg, run, validation.dataset, progress=False)
    assert tuned.method == "lora" and tuned.n_steps >= 1
    tuned_eval = stages.evaluate_tuned(cfg, run, validation.dataset, tuned)
    decision = stages.compare(
        cfg, run, validation.dataset, GateInputs(baselines=list(results.values()), tuned_eval=tuned_eval, tuned=tuned)
    )
    assert decision.gate_metric == "accuracy" and decision.decision in ("promote", "reject")
    assert {p.prediction for p in tuned_eval.predictions} <= {"pos", "neg"}

    from tunegate.answering import AnswerSpec
    from tunegate.modeling import load_tokenizer

    builder = AnswerSpec.from_config(cfg).builder(load_tokenizer(run.model_path))
    assert builder.instruction() == "What is the topic of the input? Answer with one of: pos, neg."
    with pytest.raises(ConfigError, match="a generation task has no label set; remove data.labels or use task: "):
        parse_config({"task": "generation", "data": {"train": "t.csv", "labels": ["a", "b"]}})
