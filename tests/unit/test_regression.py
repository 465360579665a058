"""Regression (a numeric target): metrics, validation, number parsing, and the stages end to end (tiny model)."""

import numpy as np
import polars as pl
import pytest
import yaml
from sklearn.metrics import mean_absolute_error, r2_score

from tests.conftest import make_config
from tunegate import metrics
from tunegate.config import load_config
from tunegate.scoring import parse_number
from tunegate.stats import bootstrap_weights


def test_regression_metrics_match_sklearn_and_resample_consistently():
    refs = ["1", "2", "3", "4", "5", "2.5"]
    preds = ["1.5", "2", "2", "4.5", "4", "3"]
    values, per = metrics.compute("regression", preds, refs)
    y, p = np.array([float(r) for r in refs]), np.array([float(x) for x in preds])
    assert values["r2"] == pytest.approx(r2_score(y, p)) and values["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert values["rmse"] == pytest.approx(np.sqrt(((y - p) ** 2).mean()))
    w = np.vstack([np.ones((1, len(y))), bootstrap_weights(len(y), 50, 0)])
    rs = metrics.resampled("r2", w, predictions=preds, references=refs)
    assert rs[0] == pytest.approx(values["r2"])
    # a resample equals r2 on the rows it drew, repeated
    rows = np.repeat(np.arange(len(y)), w[1].astype(int))
    assert rs[1] == pytest.approx(r2_score(y[rows], p[rows]))


@pytest.mark.parametrize(
    "text,value",
    [("4", 4.0), ("4.5 stars", 4.5), ("Score: 3", 3.0), ("-2", -2.0), ("3,5", 3.5), ("no idea", None), ("", None)],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


def regression_config(tmp_path, tiny_model_dir, method=None, rows=None):
    rows = rows or [(f"review number {i} " + "good " * (i % 5), str(1 + i % 5)) for i in range(30)]
    pl.DataFrame({"text": [r[0] for r in rows[:22]], "label": [r[1] for r in rows[:22]]}).write_csv(
        tmp_path / "train.csv"
    )
    pl.DataFrame({"text": [r[0] for r in rows[22:]], "label": [r[1] for r in rows[22:]]}).write_csv(
        tmp_path / "eval.csv"
    )
    path = make_config(
        tmp_path,
        tiny_model_dir,
        {"train": tmp_path / "train.csv", "eval": tmp_path / "eval.csv"},
        task="regression",
        gate={"min_gain": -1.0, "bootstrap_samples": 200},
        **({"method": method} if method else {}),
    )
    raw = yaml.safe_load(path.read_text())
    del raw["data"]["labels"]
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_non_numeric_targets_are_named_by_row(tmp_path, tiny_model_dir, tiny_tokenizer):
    from tunegate.validation import validate

    rows = [(f"text {i}", "three" if i in (2, 5) else str(i % 4)) for i in range(30)]
    out = validate(regression_config(tmp_path, tiny_model_dir, rows=rows), tiny_tokenizer)
    assert not out.ok
    issue = next(i for i in out.issues if "number" in i.message)
    assert issue.rows == [3, 6]  # 1-based data rows of the train file


def test_regression_config_rules(tmp_path, tiny_model_dir):
    from tunegate.errors import ConfigError

    cfg = regression_config(tmp_path, tiny_model_dir)
    assert cfg.gate_metric == "r2"
    assert {m.name for m in cfg.compare_methods()} == {"lora", "qlora", "prompt_tuning", "linear_probe"}
    with pytest.raises(ConfigError, match="'accuracy' does not apply to regression"):
        load_config(tmp_path / "config.yaml", {"gate.metric": "accuracy"})


@pytest.mark.parametrize(
    "method",
    [
        {"name": "lora", "r": 2, "max_steps": 2, "batch_size": 4, "max_length": 64},
        {"name": "linear_probe", "epochs": 30, "max_length": 64},
    ],
)
def test_regression_stages_end_to_end_and_predict(tmp_path, tiny_model_dir, method):
    from tests.unit.test_stages import run_all
    from tunegate.inference import load_predictor, predict

    cfg = regression_config(tmp_path, tiny_model_dir, method=method)
    run, base, tuned_eval, decision, deployed = run_all(cfg)
    assert set(tuned_eval.metrics) == {"r2", "mae", "rmse"} and decision.gate_metric == "r2"
    assert decision.ci_low <= decision.delta <= decision.ci_high
    assert all(isinstance(float(p.prediction), float) for p in tuned_eval.predictions)
    for b in base:  # the tiny model rarely writes a number: those answers fall back to the train mean, counted
        assert 0 <= b.details["unparsed_answers"] <= b.n and b.details["fallback"] == pytest.approx(
            pl.read_parquet(next((tmp_path / "runs").iterdir()) / "data" / "train.parquet")["label"]
            .cast(pl.Float64)
            .mean()
        )
    out = predict(load_predictor(cfg.registry.path, "toy@1"), ["review number 3 good good"])
    assert set(out[0]) == {"input", "value"}
    if method["name"] == "linear_probe":
        assert tuned_eval.details == {"unparsed_answers": 0, "fallback": pytest.approx(base[0].details["fallback"])}
        assert isinstance(out[0]["value"], float)
