"""The answer-only loss, micro-batching and the loop, on the tiny model."""

import functools
import random

import pytest
import torch

from tunegate.methods.lora import LoRA, LoraSettings
from tunegate.modeling import load_model
from tunegate.training import answer_only_loss, collate, micro_batches, shuffled_batches, train_answer_loss


def examples(tok, n=12):
    rng = random.Random(0)
    out = []
    for i in range(n):
        prompt = tok(f"question {i} " + "x " * rng.randint(1, 10), add_special_tokens=False).input_ids
        answer = tok(" yes" if i % 2 else " no", add_special_tokens=False).input_ids + [tok.eos_token_id]
        out.append((prompt, answer))
    return out


def test_answer_only_loss_equals_full_logits_loss(tiny_model_dir, tiny_tokenizer):
    model = load_model(str(tiny_model_dir))
    batch = collate(examples(tiny_tokenizer, 4), tiny_tokenizer.pad_token_id)
    ours = answer_only_loss(model, batch)
    reference = model(**batch).loss  # HF: full logits everywhere, ignore_index -100
    assert torch.allclose(ours, reference, atol=1e-5)


def test_micro_batching_is_exact(tiny_model_dir, tiny_tokenizer, float32):
    ex = examples(tiny_tokenizer, 8)
    pad = tiny_tokenizer.pad_token_id
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=0))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.01)
    params = [p for p in model.parameters() if p.requires_grad]
    full = collate(ex, pad)
    answer_only_loss(model.get_base_model(), full).backward()
    g_full = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    parts = [collate(ex[i : i + 2], pad) for i in range(0, 8, 2)]
    n_ans = sum(int((b["labels"][:, 1:] != -100).sum()) for b in parts)
    for b in parts:
        share = int((b["labels"][:, 1:] != -100).sum()) / n_ans
        (answer_only_loss(model.get_base_model(), b) * share).backward()
    for a, b in zip(g_full, [p.grad for p in params]):
        assert torch.allclose(a, b, atol=1e-6)


def test_batches_are_random_and_micro_batches_group_similar_lengths():
    lengths = [random.Random(i).randint(5, 100) for i in range(103)]
    batches = shuffled_batches(len(lengths), 8, random.Random(0))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(103)) and all(len(b) <= 8 for b in batches)
    # random batches, not length buckets: a batch mixes short and long rows
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spread) / len(spread) > 40
    for b in batches:
        micro = micro_batches(b, lengths, 4)
        assert sorted(i for m in micro for i in m) == sorted(b)  # the update is the batch's
        assert [lengths[i] for m in micro for i in m] == sorted(lengths[i] for i in b)


def test_loss_falls_and_checkpoints_are_written(tiny_model_dir, tiny_tokenizer, tmp_path):
    ex = examples(tiny_tokenizer, 8)
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    saved = []
    st = train_answer_loss(
        model,
        ex,
        loss_fn=functools.partial(answer_only_loss, model.get_base_model()),
        pad_id=tiny_tokenizer.pad_token_id,
        epochs=15,
        batch_size=4,
        micro_batch_size=2,
        lr=2e-2,
        progress=False,
        checkpoint_dir=tmp_path,
        save_checkpoint=lambda m, p: saved.append(p),
    )
    assert st.steps == 30 and len(st.epoch_losses) == 15 and len(saved) == 15
    assert st.epoch_losses[-1] < 0.75 * st.epoch_losses[0]  # a random 32-wide model learns slowly
    assert st.tokens <= st.padded_tokens and st.peak_rss_mb > 0


def test_seed_makes_training_deterministic(tiny_model_dir, tiny_tokenizer):
    ex = examples(tiny_tokenizer, 8)
    runs = []
    for _ in range(2):
        model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=3))
        st = train_answer_loss(
            model,
            ex,
            loss_fn=functools.partial(answer_only_loss, model.get_base_model()),
            pad_id=tiny_tokenizer.pad_token_id,
            epochs=1,
            batch_size=4,
            lr=1e-2,
            seed=3,
            progress=False,
        )
        runs.append(st.losses)
    assert runs[0] == runs[1]


def test_no_trainable_parameters_is_an_error(tiny_model_dir, tiny_tokenizer):
    model = load_model(str(tiny_model_dir))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        train_answer_loss(
            model,
            examples(tiny_tokenizer, 2),
            loss_fn=lambda b: None,
            pad_id=0,
            epochs=1,
            batch_size=2,
            lr=1e-3,
            progress=False,
        )
