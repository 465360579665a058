"""The batched, cached label scorer equals a plain one-sequence-at-a-time log-likelihood."""

import torch

from tunegate.config import PromptConfig
from tunegate.modeling import load_model
from tunegate.prompts import PromptBuilder
from tunegate.scoring import generate, score_answers


def brute_force(model, prompt, answer):
    ids = torch.tensor([prompt + answer])
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return sum(float(lp[len(prompt) - 1 + k, t]) for k, t in enumerate(answer))


def test_score_answers_matches_brute_force(tiny_model_dir, tiny_tokenizer, float32):
    model = load_model(str(tiny_model_dir))
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["technical support", "billing", "refund"])
    prompts = [
        b.encode(b.render(t)) for t in ["my card was charged twice", "app crashes", "a much longer message " * 5]
    ]
    answers = [b.encode(a) for a in ["technical support", "billing", "refund"]]
    assert max(len(a) for a in answers) > 1  # exercises the KV-cache tail path
    scores, stats = score_answers(model, prompts, answers, pad_id=tiny_tokenizer.pad_token_id, batch_size=2)
    for i, p in enumerate(prompts):
        for j, a in enumerate(answers):
            assert abs(scores[i, j].item() - brute_force(model, p, a)) < 1e-3
    assert stats.n == 3 and stats.prompt_tokens == sum(len(p) for p in prompts)


def test_training_targets_are_exactly_the_scored_tokens(tiny_tokenizer):
    """The end-of-turn token is scored (and trained) only where labels clash by prefix; generation keeps it."""
    eos = tiny_tokenizer.eos_token_id
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["refund", "refunds"])
    assert b.encode("refunds")[:2] == b.encode("refund")  # the clash is real
    assert b.label_answer_ids() == [b.encode("refund") + [eos], b.encode("refunds") + [eos]]
    b2 = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["yes", "no"])
    assert b2.label_answer_ids() == [b2.encode("yes"), b2.encode("no")]
    assert b2.training_example("is it?", "no", 64)[1] == b2.encode("no") == b2.answer_ids("no")
    g = PromptBuilder(tiny_tokenizer, PromptConfig(), "generation")
    assert g.answer_ids("a reply") == g.encode("a reply") + [eos]


def test_generate_is_greedy_and_batched(tiny_model_dir, tiny_tokenizer):
    model = load_model(str(tiny_model_dir))
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "generation")
    prompts = [b.encode(b.render(t)) for t in ["hello", "a longer input text here"]]
    batched, st = generate(model, tiny_tokenizer, prompts, max_new_tokens=5, batch_size=2)
    single = [generate(model, tiny_tokenizer, [p], max_new_tokens=5, batch_size=1)[0][0] for p in prompts]
    assert batched == single and st.n == 2


def test_prompt_builder_truncates_to_budget(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "classification", ["a", "b"])
    p, a = b.training_example("word " * 500, "a", max_length=64)
    assert len(p) + len(a) <= 64 and a == b.encode("a")
    assert "{labels}" not in b.instruction() and "a, b" in b.instruction()
