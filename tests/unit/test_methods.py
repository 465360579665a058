"""Every registered method on the tiny model: train two steps, save, reload, score."""

import pytest
import torch

from tunegate.config import LoraConfig, PromptConfig, QLoraConfig
from tunegate.methods import METHODS, get_method
from tunegate.prompts import PromptBuilder
from tunegate.scoring import score_answers

SMALL = dict(r=2, alpha=4, max_steps=2, batch_size=2, micro_batch_size=1, epochs=1)
METHOD_CONFIGS = {"lora": LoraConfig(**SMALL), "qlora": QLoraConfig(**SMALL)}


def test_every_method_has_a_test_row():
    assert set(METHODS) == set(METHOD_CONFIGS)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_train_save_reload_score(name, tiny_model_dir, tiny_tokenizer, tmp_path):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["yes", "no"])
    ex = [b.training_example(f"is {i} even?", "yes" if i % 2 == 0 else "no", 64) for i in range(6)]
    method = get_method(name)
    art = method.train(base_path=str(tiny_model_dir), examples=ex, cfg=METHOD_CONFIGS[name],
                       pad_id=tiny_tokenizer.pad_token_id, out_dir=tmp_path, progress=False)
    assert art.train_stats.steps == 2 and len(art.train_stats.losses) == 2
    assert 0 < art.trainable_params < art.total_params
    model = method.load_for_inference(base_path=str(tiny_model_dir), artifact_dir=tmp_path)
    prompts = [b.encode(b.render("is 4 even?"))]
    scores, _ = score_answers(model, prompts, [b.encode("yes"), b.encode("no")], pad_id=tiny_tokenizer.pad_token_id)
    assert scores.shape == (1, 2) and torch.isfinite(scores).all()


def test_lora_adapter_is_standard_peft(tiny_model_dir, tiny_tokenizer, tmp_path):
    from peft import PeftModel

    from tunegate.modeling import load_model

    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["yes", "no"])
    ex = [b.training_example("q", "yes", 64)] * 4
    get_method("lora").train(base_path=str(tiny_model_dir), examples=ex, cfg=METHOD_CONFIGS["lora"],
                             pad_id=tiny_tokenizer.pad_token_id, out_dir=tmp_path, progress=False)
    model = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), tmp_path / "adapter")
    assert any("lora_A" in n for n, _ in model.named_parameters())
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch-1"]


def test_unknown_method_name():
    with pytest.raises(KeyError, match="registered: lora, qlora"):
        get_method("nope")


def test_qlora_base_is_smaller_than_lora_base(tiny_model_dir, tiny_tokenizer, tmp_path):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["yes", "no"])
    ex = [b.training_example("q", "yes", 64)] * 2
    foot = {}
    for name in ("lora", "qlora"):
        art = get_method(name).train(base_path=str(tiny_model_dir), examples=ex, cfg=METHOD_CONFIGS[name],
                                     pad_id=tiny_tokenizer.pad_token_id, out_dir=tmp_path / name, progress=False)
        foot[name] = art.base_footprint_mb
    assert foot["qlora"] < foot["lora"]


def test_qlora_without_bitsandbytes_says_what_to_do(monkeypatch, tiny_model_dir):
    import importlib.util

    from tunegate.errors import MethodUnavailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(MethodUnavailableError, match="pip install bitsandbytes"):
        get_method("qlora").build(str(tiny_model_dir), METHOD_CONFIGS["qlora"])
