"""The scorer and the answer-only loss apply the output layer themselves and build their own attention masks:
on every supported architecture they must equal the model's own forward on the same tokens.

Tiny random models built from configs: llama (SmolLM2), gemma3 (scaled embeddings, tied head, sliding-window
layers, soft-capped logits here), qwen2 (sliding-window layers), mistral (one sliding window for all layers),
phi3 (fused projections). Windows are shorter than the prompts, so a mask that ignored them would differ.
"""

import pytest
import torch

from tunegate.scoring import score_answers
from tunegate.training import answer_only_loss, collate

from ..conftest import ARCHITECTURES, tiny_causal_lm

VOCAB = 300


def own_forward_score(model, prompt, answer):
    """log p(answer | prompt) from the model's own forward on the concatenated tokens."""
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([prompt + answer])).logits[0].float(), -1)
    return sum(float(lp[len(prompt) - 1 + k, t]) for k, t in enumerate(answer))


@pytest.fixture(scope="module", params=ARCHITECTURES)
def model(request):
    return tiny_causal_lm(request.param, VOCAB).eval()


def test_scorer_equals_the_models_own_forward(model):
    g = torch.Generator().manual_seed(1)
    shared = torch.randint(3, VOCAB, (9,), generator=g).tolist()  # a shared prefix (cached once)
    prompts = [shared + torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (3, 14, 20, 7)]
    # answers with shared prefixes, one a prefix of another, one and several tokens: the trie's cases
    answers = [[5], [5, 7], [5, 7, 9], [11, 12], [13, 12, 5, 6]]
    scores, stats = score_answers(model, prompts, answers, pad_id=0, batch_size=3)
    for i, p in enumerate(prompts):
        for j, a in enumerate(answers):
            assert scores[i, j].item() == pytest.approx(own_forward_score(model, p, a), abs=2e-4), (i, j)
    # the shared prefix ran once and each row's own tokens once, plus the trie's nodes per row
    n_nodes = len({tuple(a[:t]) for a in answers for t in range(1, len(a))})
    assert stats.computed_tokens == 9 + sum(len(p) - 9 for p in prompts) + len(prompts) * n_nodes


def test_scorer_with_a_soft_prompt_prefix_equals_the_forward_on_embeddings(model):
    g = torch.Generator().manual_seed(2)
    soft = torch.randn((4, model.config.hidden_size), generator=g) * 0.5
    prompts = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (5, 11)]
    answers = [[7, 8], [9]]
    scores, _ = score_answers(model, prompts, answers, pad_id=0, prefix_embeds=soft)
    for i, p in enumerate(prompts):
        for j, a in enumerate(answers):
            ids = torch.tensor([p + a])
            embeds = torch.cat([soft[None], model.get_input_embeddings()(ids)], dim=1)
            with torch.no_grad():
                lp = torch.log_softmax(model(inputs_embeds=embeds).logits[0].float(), -1)
            want = sum(float(lp[4 + len(p) - 1 + k, t]) for k, t in enumerate(a))
            assert scores[i, j].item() == pytest.approx(want, abs=2e-4)


def test_answer_only_loss_equals_the_models_own_loss(model):
    g = torch.Generator().manual_seed(3)
    examples = [(torch.randint(3, VOCAB, (n,), generator=g).tolist(), [5, 6, 7][: 1 + n % 3]) for n in (6, 13, 17)]
    batch = collate(examples, pad_id=0)
    with torch.no_grad():
        own = model(**batch).loss
        ours = answer_only_loss(model, batch)
    assert ours.item() == pytest.approx(own.item(), rel=1e-5)


def test_answer_only_loss_with_a_shared_prefix_equals_the_models_own_loss_and_gradients(model, monkeypatch):
    """Rows sharing their first tokens (the instruction) run them once per micro-batch: same loss, same gradients."""
    from tunegate import training

    g = torch.Generator().manual_seed(4)
    shared = torch.randint(3, VOCAB, (training.SHARED_PREFIX_MIN_TOKENS + 4,), generator=g).tolist()
    own_tokens = [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (3, 9, 14)]
    examples = [(shared + row, [5, 6, 7][: 1 + len(row) % 3]) for row in own_tokens]
    batch = collate(examples, pad_id=0)
    assert training.shared_prefix_length(batch) == len(shared)
    calls = []
    real = training.hidden_after_shared_prefix
    monkeypatch.setattr(training, "hidden_after_shared_prefix", lambda *a, **k: calls.append(a[3]) or real(*a, **k))

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    own, own_grads = loss_and_grads(lambda: model(**batch).loss)
    ours, our_grads = loss_and_grads(lambda: training.answer_only_loss(model, batch))
    model.zero_grad()
    assert calls == [len(shared)]  # the shared prefix ran once, at batch 1
    assert ours == pytest.approx(own, rel=1e-5)
    assert our_grads.keys() == own_grads.keys()
    for name, grad in own_grads.items():
        torch.testing.assert_close(our_grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("layer", [-1, 1])
def test_probe_features_with_a_shared_prefix_equal_the_models_own_hidden_states(model, layer):
    """The probe's last-token features run the rows' shared instruction once per batch: each equals the model's own
    forward of that row alone (final hidden state after the norm, or an inner layer's)."""
    from tunegate import training
    from tunegate.methods.linear_probe import extract_features

    g = torch.Generator().manual_seed(5)
    shared = torch.randint(3, VOCAB, (training.SHARED_PREFIX_MIN_TOKENS + 2,), generator=g).tolist()
    prompts = [shared + torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in (2, 11, 6)]
    feats = extract_features(model, prompts, pad_id=0, pooling="last", layer=layer)
    for i, p in enumerate(prompts):
        with torch.no_grad():
            own = model(input_ids=torch.tensor([p]), output_hidden_states=True).hidden_states[layer][0, -1]
        torch.testing.assert_close(feats[i], own.float(), rtol=1e-4, atol=1e-5)
