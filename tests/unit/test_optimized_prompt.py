"""The optimized-prompt rung: the search's logic on a scripted scorer (what it tries, in which order, what wins,
its caps), then the rung on the tiny model through the stages: judged like every rung, an A/A search that keeps the
configured prompt scores exactly as zero-shot, the record is an artifact and a report section, and a config
without a selection split (or a generation task) is refused by validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import make_config
from tests.unit.test_ladder import CTX, fake_env
from tunegate import stages
from tunegate.config import load_config
from tunegate.ladder import Rung
from tunegate.ladder import core as ladder
from tunegate.ladder.optimized_prompt.settings import OptimizedPromptConfig

TRAIN = pl.DataFrame(
    {
        "_row": list(range(1, 13)),
        "text": [f"{w} film {i}" for i, w in enumerate(["good", "bad"] * 6)],
        "label": ["pos", "neg"] * 6,
    }
)
SEARCH_CTX = CTX.__class__(**{**CTX.__dict__, "selection": True})


def searched(**settings):
    (rung,) = ladder.get_rung("optimized_prompt").expand(OptimizedPromptConfig(enabled=True, **settings), SEARCH_CTX)
    return ladder.search(SEARCH_CTX, rung, fake_env(TRAIN))


def test_the_search_tries_the_configured_prompt_first_then_templates_demonstrations_and_rewrites():
    rung, record = searched(k=2, rounds=1, max_candidates=20)
    origins = [c["origin"] for c in record["candidates"]]
    assert origins == [
        "configured",
        "template",
        "template",
        "template",
        "bootstrapped",
        "random",
        "retrieved",
        "rewrite",
    ]
    assert record["candidates"][0]["instruction"] == "Classify: {labels}."
    # the scripted model answers right with the 'expert' template: it wins, with its gain on the selection rows
    assert "expert" in record["chosen"]["instruction"] and not record["kept_configured"]
    assert record["gain_on_selection"] == pytest.approx(0.5) and record["stopped_by"] is None
    assert rung.params["chosen"] == record["chosen"] and record["selection_rows"] == 6  # half the split
    assert len(record["searched_rows"]) == 6
    # demonstration sets: bootstrapped rows are train rows the best prompt answered right, labels taking turns
    boot = next(c for c in record["candidates"] if c["origin"] == "bootstrapped")["demos"]
    assert len(boot["rows"]) == 2 and set(boot["rows"]) <= set(TRAIN.get_column("_row").to_list())
    assert record["tokens"] > 0 and record["seconds"] >= 0
    # the rewrite is the model's reply, tried with the best demonstrations so far
    assert record["candidates"][-1]["instruction"] == "Decide the sentiment of the text."


def test_ties_keep_the_configured_prompt_and_the_caps_stop_the_search():
    """A/A: nothing scores higher than the configured prompt (no templates, no demonstrations, no rewrites), so it is
    kept and no gain is claimed; max_candidates and max_minutes stop the search with the best so far."""
    _, record = searched(templates=False, demos=[], rewrites=0)
    assert record["kept_configured"] and record["gain_on_selection"] == 0 and len(record["candidates"]) == 1
    assert record["chosen"] == {"instruction": "Classify: {labels}.", "demos": {"source": "none", "rows": []}}
    _, record = searched(max_candidates=3)
    assert len(record["candidates"]) == 3 and record["stopped_by"] == "max_candidates (3)"
    _, record = searched(max_minutes=1e-9)
    assert len(record["candidates"]) == 1 and record["stopped_by"].startswith("max_minutes")


def test_the_chosen_demonstrations_are_rebuilt_for_any_input():
    kind = ladder.get_rung("optimized_prompt")
    base = Rung("optimized_prompt", kind="optimized_prompt", params={})
    fixed = {"instruction": "I {labels}", "demos": {"source": "random", "rows": [3, 2]}}
    aug = kind.augment(ladder.searched(base, {"search": {"chosen": fixed}}), SEARCH_CTX, TRAIN, ["x", "y", "z"])
    assert aug.instruction == "I {labels}" and len(aug.shots) == 3
    assert aug.shots[0] == [("good film 2", "positive"), ("bad film 1", "negative")]  # rows 3 and 2, in that order
    retrieved = {"instruction": "I", "demos": {"source": "retrieved", "rows": [], "k": 1}}
    aug = kind.augment(ladder.searched(base, {"search": {"chosen": retrieved}}), SEARCH_CTX, TRAIN, ["bad film 3"])
    assert aug.shots == [[("bad film 3", "negative")]] or aug.shots[0][0][1] == "negative"
    with pytest.raises(ValueError, match="after its search"):
        kind.augment(base, SEARCH_CTX, TRAIN, ["x"])


def test_on_the_tiny_model_it_is_judged_like_every_rung(tmp_path, tiny_model_dir, toy_data):
    """Through the stages: the search runs on the selection split, its record is the rung's details, its time the
    one-off setup; the A/A configuration answers every eval row exactly as zero-shot; prompts/optimized.json and
    the ladder's section are written; the calibrated twin re-builds the chosen prompts."""
    aa = {"enabled": True, "templates": False, "demos": [], "rewrites": 0}
    cfg = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            data={"dev_fraction": 0.3},
            baselines={"few_shot": False, "retrieved_few_shot": False, "calibrated": True, "optimized_prompt": aa},
        )
    )
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    assert val.ok, val.summary
    cfg = cfg.with_resolved(val.resolved)
    results = {}
    for r in ladder.baseline_rungs(cfg.baselines, cfg.ladder_context()):
        results[r.name] = stages.evaluate_baseline(cfg, run, val.dataset, r, results[r.base.name] if r.base else None)
    zero, opt = results["zero_shot"], results["optimized_prompt"]
    s = opt.details["search"]
    assert s["kept_configured"] and s["selection_rows"] == max(1, val.dataset.n_dev // 2)
    assert [p.scores for p in opt.predictions] == [p.scores for p in zero.predictions]  # the same prompts
    assert opt.metrics == zero.metrics and opt.setup_seconds >= s["seconds"] > 0
    held = {p.row for p in opt.selection.predictions}  # scored only where the search did not look
    assert held and not held & set(s["searched_rows"]) and len(held) + len(s["searched_rows"]) == val.dataset.n_dev
    twin = results["optimized_prompt_calibrated"]
    assert twin.details["search"] == s and twin.metrics == results["zero_shot_calibrated"].metrics
    out = stages.summarize_ladder(cfg, run, val.dataset, list(results.values()))
    artifact = json.loads((Path(run.run_dir) / "prompts" / "optimized.json").read_text())
    assert artifact["chosen"] == s["chosen"] and len(artifact["candidates"]) == 1
    md = Path(out["report_md"]).read_text()
    assert "**Optimized prompt** (optimized_prompt): 1 candidates scored" in md and "no gain is claimed" in md
    # a real search: templates, demonstrations, a rewrite by the (random) model; every candidate on the same rows
    search = {"enabled": True, "k": 2, "rewrites": 1, "rounds": 1, "max_candidates": 7}
    cfg2 = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            data={"dev_fraction": 0.3},
            baselines={"zero_shot": False, "few_shot": False, "retrieved_few_shot": False, "calibrated": False}
            | {"optimized_prompt": search},
        )
    ).with_resolved(val.resolved)
    (rung,) = ladder.baseline_rungs(cfg2.baselines, cfg2.ladder_context())
    result = stages.evaluate_baseline(cfg2, run, val.dataset, rung)
    record = result.details["search"]
    assert 4 <= len(record["candidates"]) <= 7 and record["candidates"][0]["origin"] == "configured"
    assert result.selection is not None and result.n == val.dataset.n_eval
    assert ladder.describe("optimized_prompt", result.details).startswith("instruction searched on")


def test_without_a_selection_split_it_is_refused_before_any_model_runs(
    tmp_path, tiny_model_dir, tiny_tokenizer, toy_data
):
    from tunegate.validation import validate

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, baselines={"optimized_prompt": True}))
    out = validate(cfg, tiny_tokenizer)
    assert not out.ok and "data.dev_fraction" in out.summary() and "optimized_prompt" in out.summary()
    # with one, but too few rows left unseen by the search to choose the best rung: a warning naming the fix
    cfg = load_config(
        make_config(
            tmp_path, tiny_model_dir, toy_data, data={"dev_fraction": 0.3}, baselines={"optimized_prompt": True}
        )
    )
    out = validate(cfg, tiny_tokenizer)
    (warning,) = [w for w in out.warnings if w.check == "search_rows"]
    n_dev = out.stats["rows"]["dev"]
    assert out.ok and f"searches on {n_dev // 2} of the {n_dev} selection rows" in warning.message
    assert f"at least {100 + n_dev // 2} rows (raise data.dev_fraction" in warning.message


def test_the_best_rung_is_chosen_on_the_selection_rows_no_search_has_seen():
    """A searched prompt is scored only on the selection rows its search did not use; every rung is compared there.
    Rung a is right on rows 3 and 4 only (0.5 over all four rows); the searched rung b, scored on rows 3 and 4,
    gets one right (0.5) with a cheaper prompt: over each one's own rows b would win the tie, on the shared rows a
    wins 1.0 to 0.5."""
    from tunegate.records import EvalResult, Prediction, Selection
    from tunegate.selection import best_baseline, common_rows, selection_record, selection_scores

    def result(name, rights, rows, tokens):
        preds = [Prediction(row=r, prediction="pos" if ok else "neg", reference="pos") for r, ok in zip(rows, rights)]
        acc = sum(rights) / len(rights)
        sel = Selection(metrics={"accuracy": acc}, predictions=preds, n=len(preds))
        return EvalResult(
            name=name, kind="baseline", metrics={"accuracy": 0.7}, predictions=[], n=10, selection=sel,
            prompt_tokens_per_request=tokens, latency_ms_per_request=1.0, examples_per_s=1.0, seconds=1.0, batch_size=1,
        )  # fmt: skip

    a = result("a", [False, False, True, True], [1, 2, 3, 4], tokens=100)
    b = result("b", [True, False], [3, 4], tokens=50)
    assert common_rows([a, b]) == {3, 4}
    assert selection_scores([a, b], "accuracy") == {"a": 1.0, "b": 0.5}
    assert best_baseline([a, b], "accuracy").name == "a"
    record = selection_record([a, b], a, None, "accuracy")
    assert record["selection_rows"] == 2 and record["scores"]["a"]["selection"] == 1.0


def test_a_rewrite_is_the_first_line_that_reads_as_an_instruction():
    from tunegate.ladder.optimized_prompt.rung import _instruction_in

    assert (
        _instruction_in('Instruction: "Label the review by its overall tone."')
        == "Label the review by its overall tone."
    )
    echo = "The current instruction got these wrong:\nInput: it goes nowhere\nCorrect: negative\n"
    echo += "Decide if the review likes the film."
    assert _instruction_in(echo) == "Decide if the review likes the film."
    assert _instruction_in("Input: x\nCategory: positive") is None and _instruction_in("ok") is None
    said = 'The correct instruction is: "Decide whether the review is positive or negative."'
    assert _instruction_in(said) == "Decide whether the review is positive or negative."
    # a shown input repeated back is not an instruction (Gemma 3 270M answered a TREC rewrite request with one)
    request = "Examples with their correct category:\nInput: What is the longest-running television series ?\n"
    reply = "What is the longest-running television series?\nDecide what kind of answer the question wants."
    assert _instruction_in(reply, request) == "Decide what kind of answer the question wants."


def test_a_searched_prompt_that_won_is_a_version_predict_and_serve_answer_with(tmp_path, tiny_model_dir, toy_data):
    """Not promoted, with the optimized prompt the best rung: deploy registers it as a prompt version (no weights:
    the instruction, the demonstrations or their corpus, the calibrated twin's offset), the 'prompt' alias moves
    once it re-scores from the registry, and `predict` answers every eval row exactly as the rung did, for a fixed
    set, demonstrations retrieved per input and a calibrated prompt."""
    from tunegate import evaluation, prompt_versions
    from tunegate.inference import load_predictor, predict
    from tunegate.modeling import load_model, load_tokenizer
    from tunegate.records import Decision, TuneResult
    from tunegate.registry import Registry
    from tunegate.scoring import LMAnswerer

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, data={"dev_fraction": 0.3}))
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    cfg = cfg.with_resolved(val.resolved)
    ctx = cfg.ladder_context()
    spec = stages.AnswerSpec.from_config(cfg)
    train, eval_df = pl.read_parquet(val.dataset.train_path), pl.read_parquet(val.dataset.eval_path)
    texts = eval_df.get_column("text").to_list()
    answerer, tokenizer = LMAnswerer(load_model(tiny_model_dir)), load_tokenizer(tiny_model_dir)
    (artifact := tmp_path / "lora-artifact").mkdir()
    (artifact / "tunegate.json").write_text("{}")  # the rejected candidate's files: only registered, never loaded
    tuned = TuneResult(
        method="lora", artifact_dir=str(artifact), train_seconds=1, peak_rss_mb=1, trainable_params=1, total_params=2,
        n_steps=1, n_train_tokens=1, tokens_per_s=1, loss_curve=[1], epoch_losses=[1], checkpoints=[],
    )  # fmt: skip
    rows = train.get_column("_row").to_list()
    cases = [
        ({"instruction": "Say pos or neg.", "demos": {"source": "random", "rows": rows[:2]}}, None),
        ({"instruction": "Which is it: {labels}?", "demos": {"source": "retrieved", "rows": [], "k": 2}}, None),
        ({"instruction": "Label it.", "demos": {"source": "none", "rows": []}}, [0.7, -0.7]),
    ]
    reg = Registry(cfg.registry.path)
    (Path(run.run_dir) / "report.md").write_text("# the run's report\n")  # deploy appends its outcome
    for chosen, offset in cases:
        rung = ladder.searched(Rung("optimized_prompt", kind="optimized_prompt"), {"search": {"chosen": chosen}})
        aug = ladder.augment_for(ctx, rung, train, texts)
        best = evaluation.evaluate(
            answerer, tokenizer, spec=spec, eval_df=eval_df, name=rung.name, kind="baseline", augment=aug
        ).model_copy(update={"rung": "optimized_prompt"})
        if offset:
            best = evaluation.calibrated(
                best, spec=spec, name="optimized_prompt_calibrated", offset=offset, setup_seconds=0, details={}
            )
        (Path(run.run_dir) / "predictions").mkdir(exist_ok=True)
        (Path(run.run_dir) / "predictions" / f"{best.name}.jsonl").write_text(
            "".join(p.model_dump_json() + "\n" for p in best.predictions)
        )
        decision = Decision(
            decision="reject",
            summary="NOT PROMOTED: the prompt does as well",
            reasons=[],
            gate={"min_gain": 0.0},
            gate_metric="accuracy",
            baselines={best.name: best.metrics},
            best_baseline=best.name,
            tuned={"accuracy": 0.5},
            delta=0.5 - best.metrics["accuracy"],
            ci_low=-0.2,
            ci_high=0.1,
            costs={},
            provenance={"data_hash": val.dataset.data_hash, "n_train": 1, "n_eval": 1, "config_hash": "c"}
            | {"code_version": "t"},
        )
        deployed = stages.deploy(cfg, run, decision, tuned, None, best)
        assert deployed.prompt_version == deployed.registered_version + 1 and not deployed.production_moved
        assert f"as prompt version toy v{deployed.prompt_version}, 'prompt' moved" in deployed.message
        info = reg.resolve("toy@prompt")
        assert info.version == deployed.prompt_version and info.meta["method"] == "prompt"
        assert info.meta["delta"] == pytest.approx(-decision.delta) and info.meta["ci_low"] == -0.1
        predicted = predict(load_predictor(cfg.registry.path, "toy@prompt"), texts)
        assert [o["label"] for o in predicted] == [p.prediction for p in best.predictions], chosen
        probs = [round(o["probabilities"]["pos"], 3) for o in predicted]
        assert probs == [round(float(np.exp(p.scores["pos"])), 3) for p in best.predictions]
    meta = json.loads((reg.resolve("toy@prompt").path / "artifact" / "tunegate.json").read_text())
    assert meta["label_offset"] == [0.7, -0.7] and meta["prompt"]["instruction"] == "Label it."
    assert (reg.get("toy", 4).path / "artifact" / "demonstrations.parquet").is_file()  # the retrieved case's corpus
    assert json.loads((reg.get("toy", 2).path / "artifact" / "tunegate.json").read_text())["demos"]["shots"]
    # served beside a LoRA version of its base (`tunegate serve --model toy@prompt --model ...`): on the one shared
    # copy, read with the adapter off, it answers as its own copy does
    import torch
    from peft import LoraConfig, get_peft_model

    from tunegate.adapters import SharedBases
    from tunegate.inference import load_version

    torch.manual_seed(3)
    lora = LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(load_model(tiny_model_dir), lora).save_pretrained(tmp_path / "other-lora")
    bases = SharedBases()
    shared = load_version(reg.resolve("toy@prompt"), bases=bases)
    shared.answerer.shared.add_lora("other", tmp_path / "other-lora")
    assert [m["adapters"] for m in bases.memory().values()] == [["other"]]
    own, answered = predict(load_predictor(cfg.registry.path, "toy@prompt"), texts), predict(shared, texts)
    assert [o["label"] for o in answered] == [o["label"] for o in own]
    assert all(a["probabilities"] == pytest.approx(o["probabilities"], abs=1e-5) for a, o in zip(answered, own))
    import dataclasses

    (base_path,) = bases.memory()
    with_adapter = predict(dataclasses.replace(shared, answerer=bases.lm(base_path, "other")), texts)
    assert any(a["probabilities"] != pytest.approx(o["probabilities"], abs=1e-3) for a, o in zip(with_adapter, own))
    # only a searched prompt is registered: another best rung has no recorded choice to answer with
    assert not prompt_versions.registrable(best.model_copy(update={"rung": "few_shot"}))
    assert not prompt_versions.registrable(None)
