"""Every registered method on tiny models of each supported architecture: train two steps, save, reload, score."""

import pytest
import torch

from tunegate.config import PromptConfig
from tunegate.methods import METHODS, TrainingSet, get_method
from tunegate.methods.linear_probe import LinearProbeSettings
from tunegate.methods.lora import LoraSettings
from tunegate.methods.prompt_tuning import PromptTuningSettings
from tunegate.methods.qlora import QLoraSettings
from tunegate.prompts import PromptBuilder

from ..conftest import ARCHITECTURES

SMALL = dict(max_steps=2, batch_size=2, micro_batch_size=1, epochs=1)
METHOD_CONFIGS = {
    "lora": LoraSettings(r=2, alpha=4, **SMALL),
    "qlora": QLoraSettings(r=2, alpha=4, **SMALL),
    "prompt_tuning": PromptTuningSettings(num_virtual_tokens=3, **SMALL),
    "linear_probe": LinearProbeSettings(epochs=2, patience=1, batch_size=2),
}


def test_every_method_has_a_test_row():
    assert set(METHODS) == set(METHOD_CONFIGS)


def toy_set(tok, n=6, task="classification") -> TrainingSet:
    b = PromptBuilder(tok, PromptConfig(), task, ["yes", "no"] if task == "classification" else [])
    ex = [b.training_example(f"is {i} even?", "yes" if i % 2 == 0 else "no", 64) for i in range(n)]
    return TrainingSet(
        task=task,
        prompt_ids=[p for p, _ in ex],
        answer_ids=[a for _, a in ex],
        pad_id=tok.pad_token_id,
        fingerprint=f"toy-{n}-{task}",
        labels=["yes", "no"] if task == "classification" else [],
        label_index=[i % 2 for i in range(n)] if task == "classification" else None,
        instruction=b.instruction(),
    )


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_train_save_reload_score(name, arch, tiny_arch_dir, tmp_path):
    from tunegate.modeling import load_tokenizer

    base = str(tiny_arch_dir(arch))
    tok = load_tokenizer(base)  # gemma3 has no chat template, like the real one: the plain prompt format
    b = PromptBuilder(tok, PromptConfig(), "classification", ["yes", "no"])
    assert b.format == ("plain" if arch == "gemma3" else "chat")
    method = get_method(name)
    art = method.train(
        base_path=base,
        data=toy_set(tok),
        cfg=METHOD_CONFIGS[name],
        out_dir=tmp_path / "a",
        progress=False,
    )
    assert art.train_stats.steps >= 2 and len(art.train_stats.losses) == 2
    assert 0 < art.trainable_params < art.total_params
    # the artifact is self-contained: move it (as the registry does) and load it from there
    (tmp_path / "a").rename(tmp_path / "moved")
    answerer = method.load_for_inference(base_path=base, artifact_dir=tmp_path / "moved")
    prompts = [b.encode(b.render("is 4 even?")), b.encode(b.render("is 7 a much longer question, even?"))]
    scores, stats = answerer.score(prompts, b.label_answer_ids(), pad_id=tok.pad_token_id)
    assert scores.shape == (2, 2) and torch.isfinite(scores).all() and stats.n == 2
    # scores are log-probabilities of the answers (at most 0)
    assert (scores <= 0).all()


def test_lora_adapter_is_standard_peft(tiny_model_dir, tiny_tokenizer, tmp_path):
    from peft import PeftModel

    from tunegate.modeling import load_model

    get_method("lora").train(
        base_path=str(tiny_model_dir),
        data=toy_set(tiny_tokenizer, 4),
        cfg=METHOD_CONFIGS["lora"],
        out_dir=tmp_path,
        progress=False,
    )
    model = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), tmp_path / "adapter")
    assert any("lora_A" in n for n, _ in model.named_parameters())
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000002"]  # the epoch end


def test_unknown_method_name():
    with pytest.raises(KeyError, match="registered: linear_probe, lora, prompt_tuning, qlora"):
        get_method("nope")


def test_qlora_base_is_smaller_than_lora_base(tiny_model_dir, tiny_tokenizer, tmp_path):
    from tunegate.hardware import using
    from tunegate.records import Placement

    foot = {}
    for name in ("lora", "qlora"):
        with using(Placement()):  # both bases in float32 (with a bf16 base, the tiny model's fp32 embeddings win)
            art = get_method(name).train(
                base_path=str(tiny_model_dir),
                data=toy_set(tiny_tokenizer, 2),
                cfg=METHOD_CONFIGS[name],
                out_dir=tmp_path / name,
                progress=False,
            )
        foot[name] = art.base_footprint_mb
    assert foot["qlora"] < foot["lora"]


def test_qlora_without_bitsandbytes_says_what_to_do(monkeypatch, tiny_model_dir):
    import importlib.util

    from tunegate.errors import MethodUnavailableError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a)
    )
    with pytest.raises(MethodUnavailableError, match="pip install bitsandbytes"):
        get_method("qlora").build(str(tiny_model_dir), METHOD_CONFIGS["qlora"])


def test_soft_prompt_scores_match_the_training_loss(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    """Scoring (the soft prompt as a cached prefix, answers as a trie) and training (right-padded) see it at the same
    positions: the scorer's log-likelihood of the answer equals minus the training loss summed over its tokens."""
    from tunegate.methods.prompt_tuning import SoftPromptLM
    from tunegate.training import answer_only_loss, collate

    method = get_method("prompt_tuning")
    data = toy_set(tiny_tokenizer, 2)
    peft_model = method.build(str(tiny_model_dir), PromptTuningSettings(num_virtual_tokens=4, init="random"), "")
    soft = SoftPromptLM(peft_model).eval()
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["technical support", "no"])
    short, long_ = b.encode(b.render("hi")), b.encode(b.render("a much longer input with many more words in it"))
    answer = b.answer_ids("technical support")  # two tokens or more: exercises the answer trie
    assert len(answer) >= 2
    from tunegate.scoring import score_answers

    with torch.no_grad():
        scores, _ = score_answers(soft.lm, [short, long_], [answer], pad_id=data.pad_id, prefix_embeds=soft.prefix())
        for i, prompt in enumerate([short, long_]):
            batch = collate([(prompt, answer)], data.pad_id)
            loss = answer_only_loss(soft.lm, batch, prefix_embeds=soft.prefix())
            assert scores[i, 0].item() == pytest.approx(-loss.item() * len(answer), abs=1e-3)
        # both rows in one batch (their shared first tokens run once): the loss of the model's own forward
        batch = collate([(short, answer), (long_, answer)], data.pad_id)
        logits = soft(batch["input_ids"], batch["attention_mask"]).logits[:, soft.n_virtual : -1]
        own = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), batch["labels"][:, 1:])
        ours = answer_only_loss(soft.lm, batch, prefix_embeds=soft.prefix())
        assert ours.item() == pytest.approx(own.item(), rel=1e-4)


def test_soft_prompt_generation_follows_the_forward_pass(tiny_model_dir, tiny_tokenizer):
    from tunegate.methods.prompt_tuning import SoftPromptLM
    from tunegate.scoring import _left_pad, _positions

    peft_model = get_method("prompt_tuning").build(
        str(tiny_model_dir), PromptTuningSettings(num_virtual_tokens=3, init="random"), ""
    )
    soft = SoftPromptLM(peft_model).eval()
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "generation", [])
    ids, mask = _left_pad(
        [b.encode(b.render("x")), b.encode(b.render("a longer input here"))], tiny_tokenizer.pad_token_id
    )
    out = soft.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=3,
        do_sample=False,
        pad_token_id=tiny_tokenizer.pad_token_id,
        eos_token_id=None,
    )
    assert out.shape == (2, ids.shape[1] + 3) and torch.equal(out[:, : ids.shape[1]], ids)
    with torch.no_grad():
        first = soft(input_ids=ids, attention_mask=mask, position_ids=_positions(mask)).logits[:, -1].argmax(-1)
    assert torch.equal(out[:, ids.shape[1]], first)


def test_prompt_tuning_is_standard_peft_and_inits_from_text(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    from peft import PeftModel

    from tunegate.modeling import load_model

    cfg = PromptTuningSettings(num_virtual_tokens=4, **SMALL)
    get_method("prompt_tuning").train(
        base_path=str(tiny_model_dir), data=toy_set(tiny_tokenizer, 4), cfg=cfg, out_dir=tmp_path, progress=False
    )
    model = PeftModel.from_pretrained(load_model(str(tiny_model_dir)), tmp_path / "adapter")
    assert model.active_peft_config.peft_type.value == "PROMPT_TUNING"
    assert model.get_prompt(batch_size=1).shape[1] == 4
    # init from the instruction text: before training, the virtual tokens are that text's embeddings
    built = get_method("prompt_tuning").build(str(tiny_model_dir), cfg, "Classify this")
    text_ids = tiny_tokenizer("Classify this", add_special_tokens=False).input_ids
    emb = built.get_base_model().get_input_embeddings().weight[text_ids[0]]
    assert torch.allclose(built.get_prompt(batch_size=1)[0, 0], emb)


def test_prompt_tuning_generation_task(tiny_model_dir, tiny_tokenizer, tmp_path):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "generation", [])
    data = toy_set(tiny_tokenizer, 4, task="generation")
    method = get_method("prompt_tuning")
    method.train(
        base_path=str(tiny_model_dir), data=data, cfg=METHOD_CONFIGS["prompt_tuning"], out_dir=tmp_path, progress=False
    )
    answerer = method.load_for_inference(base_path=str(tiny_model_dir), artifact_dir=tmp_path)
    texts, stats = answerer.generate(tiny_tokenizer, [b.encode(b.render("hello"))], max_new_tokens=4)
    assert len(texts) == 1 and isinstance(texts[0], str) and stats.n == 1


def test_linear_probe_learns_and_caches_features(tiny_model_dir, tiny_tokenizer, tmp_path, monkeypatch):
    """Two clearly different prompt families: the head separates them on held-out rows; features are cached."""
    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path / "cache"))
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["yes", "no"])
    texts = [("good " * (1 + i % 3), 0) if i % 2 else ("zz qq " * (4 + i % 3), 1) for i in range(40)]
    ex = [b.training_example(t, "yes", 64) for t, _ in texts]
    data = TrainingSet(
        task="classification",
        prompt_ids=[p for p, _ in ex],
        answer_ids=[a for _, a in ex],
        pad_id=tiny_tokenizer.pad_token_id,
        fingerprint="probe-toy",
        labels=["yes", "no"],
        label_index=[y for _, y in texts],
    )
    cfg = LinearProbeSettings(epochs=200, patience=20, val_fraction=0.25, lr=0.05)
    method = get_method("linear_probe")
    art = method.train(base_path=str(tiny_model_dir), data=data, cfg=cfg, out_dir=tmp_path / "p1", progress=False)
    extra = art.train_stats.extra
    assert extra["feature_cache_hit"] is False and extra["val_rows"] == 10
    assert extra["val_accuracy"] > extra["majority_rate"]
    assert art.train_stats.losses[-1] < art.train_stats.losses[0]
    assert art.trainable_params == (tiny_model_hidden(tiny_model_dir) + 1) * 2
    again = method.train(base_path=str(tiny_model_dir), data=data, cfg=cfg, out_dir=tmp_path / "p2", progress=False)
    assert again.train_stats.extra["feature_cache_hit"] is True
    # a different pooling is a different feature set
    mean = method.train(
        base_path=str(tiny_model_dir),
        data=data,
        cfg=cfg.model_copy(update={"pooling": "mean"}),
        out_dir=tmp_path / "p3",
        progress=False,
    )
    assert mean.train_stats.extra["feature_cache_hit"] is False
    answerer = method.load_for_inference(base_path=str(tiny_model_dir), artifact_dir=tmp_path / "p1")
    scores, _ = answerer.score(data.prompt_ids, [[1], [2]], pad_id=data.pad_id)
    acc = (scores.argmax(1) == torch.tensor(data.label_index)).float().mean().item()
    assert acc > 0.9


def tiny_model_hidden(path) -> int:
    import json

    return json.loads((path / "config.json").read_text())["hidden_size"]


def test_linear_probe_refuses_generation_clearly(tiny_model_dir, tiny_tokenizer, tmp_path):
    method = get_method("linear_probe")
    assert [t for t in ("classification", "generation", "regression") if method.applies_to(t)] == [
        "classification",
        "regression",
    ]
    with pytest.raises(ValueError, match="classification and regression only"):
        method.train(
            base_path=str(tiny_model_dir),
            data=toy_set(tiny_tokenizer, 4, task="generation"),
            cfg=METHOD_CONFIGS["linear_probe"],
            out_dir=tmp_path,
            progress=False,
        )
