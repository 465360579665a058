"""Every stage function in order, without Prefect, for both task kinds (tiny model)."""

import json

import polars as pl
import pytest

from tests.conftest import make_config
from tunegate import stages
from tunegate.answering import AnswerSpec
from tunegate.config import load_config
from tunegate.ladder.core import baseline_rungs
from tunegate.records import GateInputs
from tunegate.registry import Registry


def run_all(cfg):
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    assert val.ok, val.summary
    results = {}
    for r in baseline_rungs(cfg.baselines, cfg.ladder_context()):
        results[r.name] = stages.evaluate_baseline(cfg, run, val.dataset, r, results[r.base.name] if r.base else None)
    base = list(results.values())
    tuned = stages.tune(cfg, run, val.dataset, progress=False)
    tuned_eval = stages.evaluate_tuned(cfg, run, val.dataset, tuned)
    decision = stages.compare(cfg, run, val.dataset, GateInputs(baselines=base, tuned_eval=tuned_eval, tuned=tuned))
    deployed = stages.deploy(cfg, run, decision, tuned)
    return run, base, tuned_eval, decision, deployed


def test_generation_task_end_to_end(tmp_path, tiny_model_dir):
    rows = [
        (f"name[Pub {i}], food[{f}]", f"Pub {i} serves {f} food.")
        for i, f in enumerate(["Thai", "Italian", "French", "Indian"] * 4)
    ]
    pl.DataFrame({"input": [r[0] for r in rows[:12]], "target": [r[1] for r in rows[:12]]}).write_csv(
        tmp_path / "train.csv"
    )
    pl.DataFrame({"input": [r[0] for r in rows[12:]], "target": [r[1] for r in rows[12:]]}).write_csv(
        tmp_path / "eval.csv"
    )
    path = make_config(
        tmp_path,
        tiny_model_dir,
        {"train": tmp_path / "train.csv", "eval": tmp_path / "eval.csv"},
        task="generation",
        baselines={"max_new_tokens": 8, "few_shot": {"k": 2}, "batch_size": 4},
    )
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
    cfg = load_config(
        make_config(tmp_path, tiny_model_dir, toy_data, gate={"min_gain": -1.0, "bootstrap_samples": 200})
    )
    run, base, tuned_eval, decision, deployed = run_all(cfg)
    files = {p.name for p in (tmp_path / "runs" / run.run_id).iterdir()}
    assert {
        "config.yaml",
        "validation.md",
        "validation.json",
        "data",
        "predictions",
        "artifact",
        "loss.png",
        "decision.json",
        "report.md",
        "deployment.json",
        "timings.jsonl",
    } <= files
    assert decision.decision == "promote"  # min_gain -1: any CI passes
    assert decision.costs["tuned:lora"]["base_weights_mb"] > 0
    assert deployed.production_moved and Registry(cfg.registry.path).resolve("toy@production").version == 1
    stages_timed = [
        json.loads(line)["stage"]
        for line in (tmp_path / "runs" / run.run_id / "timings.jsonl").read_text().splitlines()
    ]
    ladder = ["zero_shot", "few_shot", "retrieved_few_shot_hybrid"]
    assert stages_timed == [
        "validate_data",
        *(f"evaluate_baseline[{n}{c}]" for n in ladder for c in ("", "_calibrated")),
        "tune",
        "evaluate_tuned",
        "compare",
        "deploy",
    ]
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

    cfg = load_config(
        make_config(tmp_path, tiny_model_dir, toy_data, gate={"min_gain": -1.0, "bootstrap_samples": 200})
    )
    run_all(cfg)
    p = load_predictor(cfg.registry.path, "toy@production")
    out = predict(p, ["what a film", "so dull"])
    assert [set(o["probabilities"]) for o in out] == [{"pos", "neg"}] * 2
    assert all(o["label"] == max(o["probabilities"], key=o["probabilities"].get) for o in out)
    assert all(sum(o["probabilities"].values()) == pytest.approx(1.0) for o in out)
    # what is served is cut and prompted exactly as what was judged, an input over the length budget included
    from dataclasses import replace

    from tunegate.data import ROW
    from tunegate.evaluation import evaluate
    from tunegate.scoring import Answerer

    class Spy(Answerer):
        def __init__(self, inner):
            self.inner, self.seen = inner, []

        def score(self, prompt_ids, answer_ids, **kw):
            self.seen += prompt_ids
            return self.inner.score(prompt_ids, answer_ids, **kw)

    texts = ["what a film", "a long review " * 80]
    judged, served = Spy(p.answerer), Spy(p.answerer)
    evaluate(
        judged,
        p.tokenizer,
        spec=AnswerSpec.from_config(cfg),
        eval_df=pl.DataFrame({ROW: [0, 1], "text": texts, "label": ["pos", "neg"]}),
        name="tuned:lora",
        kind="tuned",
    )
    predict(replace(p, answerer=served), texts)
    assert served.seen == judged.seen and len(judged.seen[1]) < cfg.method.max_length < len(
        p.tokenizer(texts[1]).input_ids
    )


@pytest.mark.parametrize(
    "method",
    [
        {"name": "lora", "r": 2, "max_steps": 2, "batch_size": 4, "max_length": 64},
        {"name": "qlora", "r": 2, "max_steps": 2, "batch_size": 4, "max_length": 64},
        {"name": "prompt_tuning", "num_virtual_tokens": 3, "max_steps": 2, "batch_size": 4, "max_length": 64},
        {"name": "linear_probe", "epochs": 5, "max_length": 64},
    ],
)
def test_every_method_registers_and_predicts_from_the_registry(tmp_path, tiny_model_dir, toy_data, method):
    from tunegate.inference import load_predictor, predict

    cfg = load_config(
        make_config(
            tmp_path, tiny_model_dir, toy_data, method=method, gate={"min_gain": -1.0, "bootstrap_samples": 200}
        )
    )
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


def test_a_new_method_needs_no_edit_outside_its_module(tmp_path, tiny_model_dir, toy_data):
    """A method registered here (a majority-label 'head') appears in applicable_methods, the config, plan, compare
    and predict, and its hooks decide the plan and the advisor: nothing outside its own definition names it."""
    import json as _json
    from pathlib import Path
    from typing import ClassVar, Literal

    import torch

    from tests.unit.test_planning import est
    from tunegate import planning
    from tunegate.inference import load_predictor, predict
    from tunegate.methods import (
        AutoSettings,
        MethodSettings,
        Rule,
        TrainedArtifact,
        TuningMethod,
        applicable_methods,
        register,
        unregister,
    )
    from tunegate.records import MethodOutcome
    from tunegate.scoring import Answerer, ScoreStats
    from tunegate.training import TrainStats

    class MajoritySettings(MethodSettings):
        answers: ClassVar[tuple[str, ...]] = ("labels",)
        name: Literal["majority"] = "majority"

    class MajorityAnswerer(Answerer):
        can_generate = False

        def __init__(self, label: int):
            self.label = label

        def score(self, prompt_ids, answer_ids, *, pad_id, batch_size=16, desc=None):
            scores = torch.full((len(prompt_ids), len(answer_ids)), -5.0)
            scores[:, self.label] = -0.1
            return scores, ScoreStats(
                n=len(prompt_ids), seconds=1e-3, prompt_tokens=sum(map(len, prompt_ids)), output_tokens=0
            )

    @register("majority", MajoritySettings)
    class Majority(TuningMethod):
        loss_axis = "label count"

        def train(self, *, base_path, data, cfg, out_dir: Path, progress=True):
            label = max(set(data.label_index), key=data.label_index.count)
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "majority.json").write_text(_json.dumps({"label": label}))
            self.write_meta(out_dir, {"method": self.name, "method_config": cfg.model_dump(mode="json")})
            stats = TrainStats(
                seconds=0.01,
                steps=1,
                tokens=10,
                padded_tokens=0,
                peak_rss_mb=1.0,
                losses=[1.0],
                epoch_losses=[1.0],
                step_seconds=[0.01],
                step_tokens=[10],
            )
            return TrainedArtifact(artifact_dir=out_dir, trainable_params=1, total_params=2, train_stats=stats)

        def load_for_inference(self, *, base_path, artifact_dir):
            return MajorityAnswerer(_json.loads((Path(artifact_dir) / "majority.json").read_text())["label"])

        def advice(self, ctx):
            return [Rule(1, ctx.priority == "speed", "counting labels is the fastest thing there is")]

    try:
        assert "majority" in applicable_methods("classification") and "majority" not in applicable_methods("generation")
        cfg = load_config(
            make_config(
                tmp_path,
                tiny_model_dir,
                toy_data,
                method={"name": "majority"},
                gate={"min_gain": -1.0, "bootstrap_samples": 200},
            )
        )
        assert isinstance(cfg.method, MajoritySettings)
        assert "majority" in [m.name for m in cfg.compare_methods()]  # `tunegate compare` runs it by default
        run = stages.prepare_run(cfg)
        validation = stages.validate_data(cfg, run)
        cfg, dataset = cfg.with_resolved(validation.resolved), validation.dataset  # max_length 'auto' chosen
        # the plan calibrates it through its hooks; the advisor picks it by its own rule
        plan = stages.plan(cfg, run, dataset)
        assert plan.chosen == "majority" and plan.estimates[0].trainable_params == 1
        speedy = cfg.with_method(AutoSettings(priority="speed"))
        ests = [*plan.estimates, est("lora")]
        advice = planning.advise(speedy.method, speedy.budget, plan.hardware, ests, plan.base_params, task=speedy.task)
        assert advice.chosen == "majority" and "counting labels" in advice.rule
        assert advice.alternatives["lora"] == "ranked below by the rules above"
        # stages, compare, registry, predict
        base = [
            stages.evaluate_baseline(cfg, run, dataset, r)
            for r in baseline_rungs(cfg.baselines, cfg.ladder_context())
            if r.base is None
        ]
        tuned = stages.tune(cfg, run, dataset, progress=False)
        tuned_eval = stages.evaluate_tuned(cfg, run, dataset, tuned)
        table = stages.compare_methods(
            cfg,
            run,
            dataset,
            base,
            [MethodOutcome(method="majority", status="completed", tuned=tuned, evaluation=tuned_eval)],
        )
        assert [r.status for r in table.rows if r.name == "majority"] == ["completed"]
        decision = stages.compare(cfg, run, dataset, GateInputs(baselines=base, tuned_eval=tuned_eval, tuned=tuned))
        deployed = stages.deploy(cfg, run, decision, tuned)
        p = load_predictor(cfg.registry.path, f"toy@{deployed.registered_version}")
        out = predict(p, ["what a film", "so dull"])
        assert len({o["label"] for o in out}) == 1 and not p.answerer.can_generate
    finally:
        unregister("majority")
    assert "majority" not in applicable_methods("classification")


def test_the_ladder_cache_key_follows_the_prompt_tokens(tmp_path, tiny_model_dir, toy_data):
    """Keyed by the exact prompt and answer token ids: a max_length that cuts no input keeps the key, one that
    cuts an input or another instruction changes it."""
    from tunegate.evaluation import prompt_fingerprint

    def key(**sections):
        cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, **sections))
        run = stages.prepare_run(cfg)
        return prompt_fingerprint(AnswerSpec.from_config(cfg), run.model_path, stages.validate_data(cfg, run).dataset)

    base = key()
    assert key(method={"name": "linear_probe", "max_length": 200}) == base
    assert key(method={"max_length": 50}) != base  # the budget now cuts the inputs (the prompt alone is 48)
    assert key(prompt={"instruction": "Label it: {labels}."}) != base
