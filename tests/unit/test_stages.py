"""Every stage function in order, without Prefect, for both task kinds (tiny model)."""

import json

import polars as pl
import pytest

from tests.conftest import make_config
from tunegate import stages
from tunegate.config import load_config
from tunegate.ladder import baseline_rungs
from tunegate.registry import Registry


def run_all(cfg):
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    assert val.ok, val.summary
    results = {}
    for r in baseline_rungs(cfg):
        results[r.name] = stages.evaluate_baseline(cfg, run, val.dataset, r, results[r.base.name] if r.base else None)
    base = list(results.values())
    tuned = stages.tune(cfg, run, val.dataset, progress=False)
    tuned_eval = stages.evaluate_tuned(cfg, run, val.dataset, tuned)
    decision = stages.compare(cfg, run, val.dataset, base, tuned_eval, tuned)
    deployed = stages.deploy(cfg, run, decision, tuned)
    return run, base, tuned_eval, decision, deployed


def test_generation_task_end_to_end(tmp_path, tiny_model_dir):
    rows = [(f"name[Pub {i}], food[{f}]", f"Pub {i} serves {f} food.") for i, f in enumerate(["Thai", "Italian", "French", "Indian"] * 4)]
    pl.DataFrame({"input": [r[0] for r in rows[:12]], "target": [r[1] for r in rows[:12]]}).write_csv(tmp_path / "train.csv")
    pl.DataFrame({"input": [r[0] for r in rows[12:]], "target": [r[1] for r in rows[12:]]}).write_csv(tmp_path / "eval.csv")
    path = make_config(tmp_path, tiny_model_dir, {"train": tmp_path / "train.csv", "eval": tmp_path / "eval.csv"},
                       task="generation", baselines={"max_new_tokens": 8, "few_shot": {"k": 2}, "batch_size": 4})
    import yaml

    raw = yaml.safe_load(path.read_text())
    del raw["data"]["labels"]
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    assert cfg.data.labels is None and cfg.gate_metric == "rouge_l"
    run, base, tuned_eval, decision, deployed = run_all(cfg)
    assert set(tuned_eval.metrics) == {"rouge_l", "exact_match", "answer_in_output"}
    assert all(isinstance(p.prediction, str) for p in tuned_eval.predictions)
    assert decision.gate_metric == "rouge_l" and decision.ci_low <= decision.delta <= decision.ci_high
    assert deployed.registered_version == 1


def test_classification_stages_write_every_output(tmp_path, tiny_model_dir, toy_data):
    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, gate={"min_gain": -1.0, "bootstrap_samples": 200}))
    run, base, tuned_eval, decision, deployed = run_all(cfg)
    files = {p.name for p in (tmp_path / "runs" / run.run_id).iterdir()}
    assert {"config.yaml", "validation.md", "validation.json", "data", "predictions", "artifact", "loss.png",
            "decision.json", "report.md", "deployment.json", "timings.jsonl"} <= files
    assert decision.decision == "promote"  # min_gain -1: any CI passes
    assert decision.costs["tuned:lora"]["base_weights_mb"] > 0
    assert deployed.production_moved and Registry(cfg.registry.path).resolve("toy@production").version == 1
    stages_timed = [json.loads(line)["stage"] for line in (tmp_path / "runs" / run.run_id / "timings.jsonl").read_text().splitlines()]
    ladder = ["zero_shot", "few_shot", "retrieved_few_shot_hybrid"]
    assert stages_timed == ["validate_data", *(f"evaluate_baseline[{n}{c}]" for n in ladder for c in ("", "_calibrated")),
                            "tune", "evaluate_tuned", "compare", "deploy"]
    # the ladder is in the report, and the retrieval index was saved with the run
    report = (tmp_path / "runs" / run.run_id / "report.md").read_text()
    assert "## Baseline ladder" in report and "retrieved_few_shot_hybrid" in report
    assert (tmp_path / "runs" / run.run_id / "indexes" / "retrieved_few_shot_hybrid" / "index.json").is_file()
    # a calibrated rung re-uses its base rung's scores: same rows and request cost, argmax of scores + offset
    by = {b.name: b for b in base}
    for name in ladder:
        raw, cal = by[name], by[f"{name}_calibrated"]
        assert cal.latency_ms_per_request == raw.latency_ms_per_request
        assert cal.prompt_tokens_per_request == raw.prompt_tokens_per_request and cal.setup_seconds > raw.setup_seconds
        off = cal.details["label_offset"]
        for p, q in zip(raw.predictions, cal.predictions):
            assert q.row == p.row and q.prediction == max(p.scores, key=lambda lab: p.scores[lab] + off[lab])
    adapter = tmp_path / "runs" / run.run_id / "artifact" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer.json").is_file()


def test_predict_from_registry(tmp_path, tiny_model_dir, toy_data):
    from tunegate.inference import load_predictor, predict

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, gate={"min_gain": -1.0, "bootstrap_samples": 200}))
    run_all(cfg)
    p = load_predictor(cfg.registry.path, "toy@production")
    out = predict(p, ["what a film", "so dull"])
    assert [set(o["probabilities"]) for o in out] == [{"pos", "neg"}] * 2
    assert all(o["label"] == max(o["probabilities"], key=o["probabilities"].get) for o in out)
    assert all(sum(o["probabilities"].values()) == pytest.approx(1.0) for o in out)


@pytest.mark.parametrize("method", [
    {"name": "lora", "r": 2, "max_steps": 2, "batch_size": 4, "max_length": 64},
    {"name": "qlora", "r": 2, "max_steps": 2, "batch_size": 4, "max_length": 64},
    {"name": "prompt_tuning", "num_virtual_tokens": 3, "max_steps": 2, "batch_size": 4, "max_length": 64},
    {"name": "linear_probe", "epochs": 5, "max_length": 64},
])
def test_every_method_registers_and_predicts_from_the_registry(tmp_path, tiny_model_dir, toy_data, method):
    from tunegate.inference import load_predictor, predict

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, method=method,
                                  gate={"min_gain": -1.0, "bootstrap_samples": 200}))
    run, base, tuned_eval, decision, deployed = run_all(cfg)
    assert tuned_eval.name == f"tuned:{method['name']}" and deployed.registered_version == 1
    p = load_predictor(cfg.registry.path, "toy@1")  # registered whatever the gate said (a random tiny model may lose)
    assert p.meta["method"] == method["name"]
    out = predict(p, ["what a film", "so dull"])
    assert all(sum(o["probabilities"].values()) == pytest.approx(1.0) for o in out)
    # the registry copy scores the eval rows exactly like the in-run artifact did
    rows = pl.read_parquet(next((tmp_path / "runs").iterdir()) / "data" / "eval.parquet")
    again = predict(p, rows.get_column("text").to_list())
    assert [o["label"] for o in again] == [x.prediction for x in tuned_eval.predictions]
