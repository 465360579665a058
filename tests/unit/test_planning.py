"""Plan estimates (measured on the tiny model), the advisor's rules, and the budget stop."""

import dataclasses

import pytest

from tests.conftest import make_config
from tests.unit.test_methods import METHOD_CONFIGS, toy_set
from tunegate import planning
from tunegate.config import BudgetConfig, load_config, parse_config
from tunegate.methods import get_method
from tunegate.methods.linear_probe import LinearProbeSettings
from tunegate.methods.lora import LoraSettings
from tunegate.planning import BudgetExceededError, estimate, over_budget
from tunegate.records import Hardware, MethodEstimate


def _full_tokens(data, cfg):
    return get_method(cfg.name).full_train_tokens(data, cfg)


@pytest.mark.parametrize("name", sorted(METHOD_CONFIGS))
def test_estimate_is_measured_for_every_method(name, tiny_model_dir, tiny_tokenizer):
    data = toy_set(tiny_tokenizer, 12)
    cfg = (
        METHOD_CONFIGS[name].model_copy(update={"max_steps": None}) if name != "linear_probe" else METHOD_CONFIGS[name]
    )
    est = estimate(cfg, base_path=str(tiny_model_dir), data=data, price_per_hour=3.6)
    assert est.applicable and est.trainable_params > 0 and est.total_params > est.trainable_params
    assert est.calibration_tokens_per_s > 0 and est.est_train_seconds > 0 and est.est_peak_mb > 100
    assert est.est_cost_usd == pytest.approx(est.est_train_seconds / 1000, rel=0.01, abs=1e-4)  # $3.6/h = $0.001/s
    assert est.full_train_tokens == _full_tokens(data, cfg)


def test_full_tokens_follow_epochs_and_max_steps(tiny_tokenizer):
    data = toy_set(tiny_tokenizer, 8)
    one = sum(len(p) + len(a) for p, a in data.examples)
    assert _full_tokens(data, LoraSettings(epochs=3, batch_size=4)) == 3 * one
    assert _full_tokens(data, LoraSettings(epochs=3, batch_size=4, max_steps=1)) == round(one / 2)
    assert _full_tokens(data, LinearProbeSettings()) == sum(len(p) for p in data.prompt_ids)


def test_estimate_says_not_applicable_for_generation(tiny_model_dir, tiny_tokenizer):
    est = estimate(
        LinearProbeSettings(),
        base_path=str(tiny_model_dir),
        data=toy_set(tiny_tokenizer, 4, "generation"),
        price_per_hour=1,
    )
    assert not est.applicable and "does not apply to generation" in est.reason


def hw(mem_gb: float, device="cpu") -> Hardware:
    return Hardware(
        device=device,
        cpu_cores=2,
        ram_total_gb=mem_gb,
        ram_available_gb=mem_gb,
        torch_threads=2,
        gpu_name="GPU" if device == "cuda" else None,
        gpu_memory_gb=mem_gb if device == "cuda" else None,
    )


def est(method, seconds=60.0, peak_mb=2000.0, base_mb=600.0, over=()) -> MethodEstimate:
    return MethodEstimate(
        method=method,
        applicable=True,
        trainable_params=10,
        total_params=100,
        est_train_seconds=seconds,
        est_peak_mb=peak_mb,
        base_footprint_mb=base_mb,
        over_budget=list(over),
    )


def advise(cfg, hardware, estimates, base_params):
    """The advisor on a config's method, budget and task."""
    return planning.advise(cfg.method, cfg.budget, hardware, estimates, base_params, task=cfg.task)


def cfg_for(task="classification", priority="quality"):
    raw = {"task": task, "data": {"train": "x.csv"}, "method": {"name": "auto", "priority": priority}}
    if task == "classification":
        raw["data"]["labels"] = ["a", "b"]
    return parse_config(raw)


ALL = [est("lora"), est("qlora", base_mb=200), est("prompt_tuning"), est("linear_probe", seconds=5)]


def test_speed_priority_on_classification_picks_the_probe():
    a = advise(cfg_for(priority="speed"), hw(24), ALL, base_params=135_000_000)
    assert a.chosen == "linear_probe" and "speed" in a.rule
    assert set(a.alternatives) == {"lora", "qlora", "prompt_tuning"}


def test_base_fits_in_16bit_picks_lora_and_says_why_not_qlora():
    a = advise(cfg_for(), hw(24), ALL, base_params=135_000_000)
    assert a.chosen == "lora" and "16-bit" in a.rule
    assert "4-bit" in a.alternatives["qlora"]
    assert a.inputs["base_16bit_gb"] == pytest.approx(135e6 * 2 / 2**30, abs=1e-3)


def test_model_too_large_for_memory_picks_qlora():
    # a 7B model's 16-bit weights (13 GB) do not fit 8 GB
    a = advise(cfg_for(), hw(8, "cuda"), ALL, base_params=7_000_000_000)
    assert a.chosen == "qlora" and "does not fit" in a.rule


def test_constrained_budget_falls_back_to_prompt_tuning_then_probe():
    tight = [
        est("lora", over=["time 9 min > cap 1 min"]),
        est("qlora", over=["time 12 min > cap 1 min"]),
        est("prompt_tuning"),
        est("linear_probe"),
    ]
    assert advise(cfg_for(), hw(24), tight, base_params=135_000_000).chosen == "prompt_tuning"
    tight[2] = est("prompt_tuning", over=["time 5 min > cap 1 min"])
    a = advise(cfg_for(), hw(24), tight, base_params=135_000_000)
    assert a.chosen == "linear_probe" and "over budget" in a.alternatives["lora"]


def test_nothing_fits_is_a_clear_error():
    over = [est(m, over=["cost $2 > cap $1"]) for m in ("lora", "qlora", "prompt_tuning")]
    with pytest.raises(BudgetExceededError, match=r"(?s)No method fits the budget.*lora: cost"):
        advise(cfg_for("generation"), hw(24), over, base_params=135_000_000)


def test_generation_with_speed_priority_does_not_pick_the_probe():
    gen = [est("lora"), est("qlora"), est("prompt_tuning")]
    assert advise(cfg_for("generation", "speed"), hw(24), gen, base_params=135_000_000).chosen == "lora"


def test_over_budget_names_every_cap_and_the_machine():
    e = est("lora", seconds=600, peak_mb=4096)
    e.est_cost_usd = 0.5
    caps = BudgetConfig(max_train_minutes=5, max_memory_gb=2, max_cost_usd=0.1)
    msgs = over_budget(e, caps, hw(3))
    assert msgs == [
        "time 10 min > cap 5 min",
        "memory 4.00 GB > cap 2 GB",
        "cost $0.5000 > cap $0.1",
        "memory 4.00 GB > 3.0 GB available here",
    ]
    assert over_budget(e, BudgetConfig(), hw(24)) == []


def test_plan_stage_blocks_over_budget_and_writes_the_plan(tmp_path, tiny_model_dir, toy_data):
    from tunegate import stages

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, budget={"max_train_minutes": 0.0001}))
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    plan = stages.plan(cfg, run, val.dataset)
    assert plan.blocked and "exceeds the budget: time" in plan.blocked and plan.chosen == "lora"
    text = (tmp_path / "runs" / run.run_id / "plan.md").read_text()
    assert "| lora (chosen) |" in text and "NO: time" in text and "Over budget" in text


def test_plan_stage_auto_chooses_and_explains(tmp_path, tiny_model_dir, toy_data):
    from tunegate import stages
    from tunegate.methods import settings_from_dict

    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, method={"name": "auto", "priority": "speed"}))
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    plan = stages.plan(cfg.with_resolved(val.resolved), run, val.dataset)
    assert {e.method for e in plan.estimates} == {"lora", "qlora", "prompt_tuning", "linear_probe"}
    assert plan.chosen == "linear_probe" and plan.advice.inputs["priority"] == "speed" and plan.blocked is None
    assert settings_from_dict(plan.chosen_config).name == "linear_probe"
    assert "## Advisor (`method: auto`): linear_probe" in (tmp_path / "runs" / run.run_id / "plan.md").read_text()


def test_memory_is_estimated_from_the_config_before_anything_is_loaded(tmp_path):
    """A 7B llama on a 16 GB GPU: LoRA on the 16-bit base cannot fit, QLoRA can. The folder holds only
    config.json (no weights), so nothing can have been loaded; the advisor then picks QLoRA."""
    from transformers import LlamaConfig

    from tunegate.footprint import model_shape
    from tunegate.hardware import using
    from tunegate.methods import TrainingSet
    from tunegate.methods.qlora import QLoraSettings
    from tunegate.planning import memory_check
    from tunegate.records import Placement

    LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000
    ).save_pretrained(tmp_path)
    data = TrainingSet(
        task="classification",
        prompt_ids=[[5 + i] + [5] * 119 for i in range(8)],  # no shared first tokens
        answer_ids=[[7]] * 8,
        pad_id=0,
        fingerprint="",
        labels=["a", "b"],
        label_index=[0, 1] * 4,
    )
    gpu = hw(16, "cuda")
    with using(Placement(device="cuda", dtype="bfloat16", reason="test")):
        lora = memory_check(LoraSettings(batch_size=8), base_path=str(tmp_path), data=data, hardware=gpu)
        qlora = memory_check(QLoraSettings(batch_size=8), base_path=str(tmp_path), data=data, hardware=gpu)
        probe = memory_check(LinearProbeSettings(), base_path=str(tmp_path), data=data, hardware=gpu)
    assert lora is not None and not lora.calibrated and "not loaded" in lora.over_budget[0]
    assert 12.0 < lora.est_memory.weights_gb < 13.0  # 6.7B parameters x 2 bytes
    assert qlora is None and probe is None  # they fit: calibrated as usual
    a = advise(cfg_for(), gpu, [lora, est("qlora"), est("prompt_tuning")], base_params=6_738_000_000)
    assert a.chosen == "qlora" and "memory: needs" in a.alternatives["lora"]
    # the estimate's parts add up, and a smaller device rules QLoRA out too
    m = lora.est_memory
    assert m.total_gb == pytest.approx(m.weights_gb + m.trainable_gb + m.activations_gb + m.runtime_gb, abs=0.01)
    with using(Placement(device="cuda", dtype="bfloat16", reason="test")):
        assert memory_check(QLoraSettings(batch_size=8), base_path=str(tmp_path), data=data, hardware=hw(4, "cuda"))
    # rows sharing their first 100 tokens (a long instruction) run them once per micro-batch of 4: the activations
    # of 100 + 4 x 21 tokens instead of 4 x 121, plus each row's copy of the prefix's keys and values (4 x 100
    # tokens x 2 x 4096 per layer: no grouped heads here); with gradient checkpointing (no KV cache) rows run whole
    shared = dataclasses.replace(data, prompt_ids=[[5] * 100 + [6 + i] * 20 for i in range(8)])
    shape, cfg = model_shape(str(tmp_path)), LoraSettings(batch_size=8)
    per_token = 8 * 4096 + 4 * 11008  # a computed token's saved activations per layer
    assert shape.kv_dim == 4096 and shape.cached_token_elements() == 2 * 4096
    for checkpointing, elements in (
        (False, (100 + 4 * 21) * per_token + 4 * 100 * 2 * 4096),
        (True, 4 * 121 * per_token),
    ):
        placement = Placement(device="cuda", dtype="bfloat16", gradient_checkpointing=checkpointing)
        whole_acts = get_method("lora").training_memory(shape, cfg, placement, data).activations_gb
        shared_acts = get_method("lora").training_memory(shape, cfg, placement, shared).activations_gb
        assert shared_acts / whole_acts == pytest.approx(elements / (4 * 121 * per_token), rel=0.02)
    # grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads of 64): a cached token's key and value
    # are also repeated to the query heads
    LlamaConfig(
        hidden_size=576, intermediate_size=1536, num_hidden_layers=2, num_attention_heads=9, num_key_value_heads=3
    ).save_pretrained(tmp_path / "gqa")
    gqa = model_shape(str(tmp_path / "gqa"))
    assert gqa.kv_dim == 192 and gqa.cached_token_elements() == 2 * 192 + 2 * 576


def test_a_larger_micro_batch_is_suggested_where_rows_share_a_long_prefix(tmp_path):
    """Rows sharing their first 100 tokens (a long label list in the instruction) compute them once per micro-batch:
    at 16 rows per micro-batch instead of 4 an epoch computes (100 + 16 x 21) / 16 = 27.25 tokens a row instead of
    (100 + 4 x 21) / 4 = 46, 1.7x fewer. The plan suggests the largest micro-batch that fits the memory limit and
    saves at least a fifth; nothing where rows share no prefix, run whole (gradient checkpointing) or the whole
    batch already runs at once."""
    from transformers import LlamaConfig

    from tunegate.footprint import model_shape
    from tunegate.hardware import using
    from tunegate.methods import TrainingSet
    from tunegate.planning import micro_batch_suggestion
    from tunegate.records import Placement

    LlamaConfig(
        hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4, vocab_size=1000
    ).save_pretrained(tmp_path)
    shape = model_shape(str(tmp_path))
    shared = TrainingSet(
        task="classification",
        prompt_ids=[[5] * 100 + [6 + i] * 20 for i in range(64)],
        answer_ids=[[7]] * 64,
        pad_id=0,
        fingerprint="",
        labels=["a", "b"],
        label_index=[0, 1] * 32,
    )
    unshared = dataclasses.replace(shared, prompt_ids=[[6 + i] * 120 for i in range(64)])
    cfg = LoraSettings(batch_size=16, micro_batch_size=4)
    e = est("lora", seconds=600.0, peak_mb=2048.0)
    cpu = Placement(device="cpu", dtype="float32", reason="test")
    with using(cpu):
        options = get_method("lora").micro_batch_options(shape, cfg, cpu, shared)
        assert [o.micro_batch_size for o in options] == [4, 8, 16]
        assert options[0].tokens_per_epoch / options[2].tokens_per_epoch == pytest.approx(46 / 27.25)
        assert options[0].memory_gb < options[1].memory_gb < options[2].memory_gb
        s = micro_batch_suggestion(cfg, e, shape=shape, data=shared, limit_gb=100)
        assert (s.micro_batch_size, s.configured, s.tokens_ratio) == (16, 4, pytest.approx(46 / 27.25, abs=1e-3))
        assert s.est_train_seconds == pytest.approx(600 * 27.25 / 46, abs=0.01)
        assert s.est_peak_gb == pytest.approx(2.0 + options[2].memory_gb - options[0].memory_gb, abs=1e-3)
        # a limit between the estimates for 8 and 16 rows: 8 ((100 + 8 x 21) / 8 = 33.5 a row, 1.37x fewer)
        between = 2.0 + (options[1].memory_gb + options[2].memory_gb) / 2 - options[0].memory_gb
        s = micro_batch_suggestion(cfg, e, shape=shape, data=shared, limit_gb=between)
        assert (s.micro_batch_size, s.tokens_ratio) == (8, pytest.approx(46 / 33.5, abs=1e-3))
        assert micro_batch_suggestion(cfg, e, shape=shape, data=shared, limit_gb=1.0) is None  # nothing fits
        assert micro_batch_suggestion(cfg, e, shape=shape, data=unshared, limit_gb=100) is None
        whole = LoraSettings(batch_size=16, micro_batch_size=None)
        assert micro_batch_suggestion(whole, e, shape=shape, data=shared, limit_gb=100) is None
    with using(Placement(device="cpu", dtype="float32", gradient_checkpointing=True, reason="test")):
        assert micro_batch_suggestion(cfg, e, shape=shape, data=shared, limit_gb=100) is None
    # the probe has no micro-batches to suggest
    assert get_method("linear_probe").micro_batch_options(shape, LinearProbeSettings(), cpu, shared) == []
    # the plan shows it under the table
    from tunegate.records import PlanResult
    from tunegate.report import render_plan

    with using(cpu):
        e.suggestion = micro_batch_suggestion(cfg, e, shape=shape, data=shared, limit_gb=100)
    plan = PlanResult(
        hardware=hw(8), estimates=[e], chosen="lora", chosen_config={}, base_params=1, n_train=64, price_per_hour=0
    )
    text = render_plan(plan, cfg_for().budget)
    assert "- lora: try `method.micro_batch_size: 16` (now 4): the same update" in text
    assert "1.7x fewer tokens: est. train time 5.9 min instead of 10.0 min, est. peak memory 2.02 GB" in text
    # micro_batch_size 'auto' (the default): the suggestion becomes the method's, with its time, memory and cost;
    # where none saves a fifth, the default 4
    from tunegate.planning import _apply_auto_micro_batch

    auto = LoraSettings(batch_size=16)
    assert auto.micro_batch_size == "auto" and auto.micro == 4 and auto.loop_settings()["micro_batch_size"] == 4
    a = est("lora", seconds=600.0, peak_mb=2048.0)
    a.est_cost_usd, a.config = 1.0, auto.model_dump(mode="json")
    with using(cpu):
        a.suggestion = micro_batch_suggestion(auto, a, shape=shape, data=shared, limit_gb=100)
        _apply_auto_micro_batch(a, auto, shape, shared)
    assert a.config["micro_batch_size"] == 16 and a.auto_micro_batch
    assert a.est_train_seconds == pytest.approx(600 * 27.25 / 46, abs=0.01) and a.est_cost_usd < 0.6
    assert a.est_peak_mb == pytest.approx(1024 * (2.0 + options[2].memory_gb - options[0].memory_gb), abs=0.1)
    plan.estimates = [a]
    text = render_plan(plan, cfg_for().budget)
    assert "- lora: `micro_batch_size: auto` -> 16: the same update" in text and "try `method" not in text
    b = est("lora", seconds=600.0, peak_mb=2048.0)
    b.config = auto.model_dump(mode="json")
    with using(cpu):
        b.suggestion = micro_batch_suggestion(auto, b, shape=shape, data=unshared, limit_gb=100)
        _apply_auto_micro_batch(b, auto, shape, unshared)
    assert b.config["micro_batch_size"] == 4 and b.est_train_seconds == 600.0
    assert LoraSettings(batch_size=2).micro == 2 and LoraSettings(micro_batch_size=None).micro == 16


def test_a_repeated_calibration_is_read_from_the_cache(tiny_model_dir, tiny_tokenizer, tmp_path, monkeypatch):
    """The same rows, settings, machine and code: the second plan reuses the measurement instead of training the
    calibration steps again; other settings are measured afresh."""
    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path))
    data = toy_set(tiny_tokenizer, 12)
    cfg = METHOD_CONFIGS["lora"].model_copy(update={"max_steps": None})
    first = estimate(cfg, base_path=str(tiny_model_dir), data=data, price_per_hour=3.6)
    assert not first.calibration_cached and len(list((tmp_path / "calibration").glob("*.json"))) == 1
    method = get_method("lora")
    monkeypatch.setattr(type(method), "train", lambda *a, **k: pytest.fail("the calibration was trained again"))
    again = estimate(cfg.model_copy(update={"epochs": 5}), base_path=str(tiny_model_dir), data=data, price_per_hour=3.6)
    assert again.calibration_cached and again.calibration_tokens_per_s == first.calibration_tokens_per_s
    assert again.est_train_seconds == pytest.approx(5 * first.est_train_seconds / cfg.epochs, rel=0.01)
    monkeypatch.undo()
    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path))
    other = estimate(cfg.model_copy(update={"r": 4}), base_path=str(tiny_model_dir), data=data, price_per_hour=3.6)
    assert not other.calibration_cached and len(list((tmp_path / "calibration").glob("*.json"))) == 2
