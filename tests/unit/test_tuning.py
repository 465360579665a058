"""Training a method into a self-describing artifact (tunegate/tuning.py): the artifact records everything serving
needs to answer as the evaluation did, the loss plot is written, and a method that does not apply is refused."""

import json
from pathlib import Path

import pytest

from tests.conftest import make_config
from tunegate import stages, tuning
from tunegate.answering import AnswerSpec
from tunegate.config import load_config


@pytest.fixture
def prepared(tmp_path, tiny_model_dir, toy_data):
    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data))
    run = stages.prepare_run(cfg)
    validation = stages.validate_data(cfg, run)
    assert validation.ok, validation.summary
    return cfg, run, validation.dataset


def test_the_artifact_describes_itself(prepared, tmp_path):
    cfg, run, dataset = prepared
    result = tuning.tune(
        cfg.method, AnswerSpec.from_config(cfg), run, dataset, tmp_path / "out", train_on="all", progress=False
    )
    meta = json.loads((Path(result.artifact_dir) / "tunegate.json").read_text())
    assert meta["method"] == "lora" and meta["method_config"]["r"] == 2
    assert meta["base_model"]["sha"] == run.model_sha
    # serving answers with the spec the evaluation used
    assert AnswerSpec.from_meta(meta) == AnswerSpec.from_meta(AnswerSpec.from_config(cfg).meta())
    assert (Path(result.artifact_dir) / "adapter" / "tokenizer_config.json").is_file()  # adapter + tokenizer
    assert (tmp_path / "out" / "loss.png").stat().st_size > 1000
    assert result.n_steps == 2 and len(result.loss_curve) == 2 and result.trainable_params < result.total_params


def test_a_method_that_does_not_apply_is_refused(prepared, tmp_path):
    from tunegate.methods.linear_probe import LinearProbeSettings

    cfg, run, dataset = prepared
    gen = cfg.model_copy(update={"task": "generation"}).with_method(LinearProbeSettings(max_length=64))
    with pytest.raises(ValueError, match="method 'linear_probe' does not apply to generation tasks"):
        tuning.tune(
            gen.method, AnswerSpec.from_config(gen), run, dataset, tmp_path / "out", train_on="all", progress=False
        )
