"""Every registered method on the tiny model: train two steps, save, reload, score."""

import pytest
import torch

from tunegate.config import LoraConfig, PromptConfig
from tunegate.methods import METHODS, get_method
from tunegate.prompts import PromptBuilder
from tunegate.scoring import score_answers

METHOD_CONFIGS = {"lora": LoraConfig(r=2, alpha=4, max_steps=2, batch_size=2, micro_batch_size=1, epochs=1)}


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
    with pytest.raises(KeyError, match="registered: lora"):
        get_method("nope")
