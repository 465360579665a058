"""Scoring prompts with a causal LM: label log-likelihoods and greedy generation.

Classification never parses free text: each allowed answer's log-likelihood is
computed after the prompt and the best one wins. One forward pass runs over a
batch of (length-sorted, left-padded) prompts computing the logits of the last
position only; answers longer than one token are finished from the KV cache with
a few tokens per label, so the prompt is never re-encoded.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass
class ScoreStats:
    """Time and tokens of a scoring or generation pass."""

    seconds: float
    prompt_tokens: int  # real (unpadded) prompt tokens
    n: int
    output_tokens: int = 0  # generated tokens up to and including the end-of-turn token (generation only)


def _left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s) :] = 1
    return ids, mask


def _positions(mask: torch.Tensor) -> torch.Tensor:
    # positions count real tokens only, as in training (right-padded) and in generate()
    return (mask.cumsum(-1) - 1).clamp(min=0)


def answer_token_ids(builder, answers: list[str]) -> list[list[int]]:
    """Token ids scored for each answer; the end-of-turn token is added only when an
    answer is a token-prefix of another (otherwise the shorter one would always win or lose)."""
    ids = [builder.encode(a) for a in answers]
    prefix_clash = any(i != j and ids[j][: len(ids[i])] == ids[i] for i in range(len(ids)) for j in range(len(ids)))
    if prefix_clash:
        ids = [x + builder.end_of_turn_ids() for x in ids]
    return ids


@torch.inference_mode()
def score_answers(
    model,
    prompt_ids: list[list[int]],
    answer_ids: list[list[int]],
    *,
    pad_id: int,
    batch_size: int = 16,
    desc: str | None = None,
) -> tuple[torch.Tensor, ScoreStats]:
    """Log-likelihood of every answer after every prompt: a float tensor [n_prompts, n_answers]."""
    n, n_ans = len(prompt_ids), len(answer_ids)
    out = torch.empty((n, n_ans), dtype=torch.float32)
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]))
    need_tail = any(len(a) > 1 for a in answer_ids)
    first_tok = torch.tensor([a[0] for a in answer_ids])
    t0 = time.perf_counter()
    bar = tqdm(total=n, desc=desc, unit="ex", disable=desc is None, dynamic_ncols=True)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        ids, mask = _left_pad([prompt_ids[i] for i in idx], pad_id)
        pos = _positions(mask)
        res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=need_tail, logits_to_keep=1)
        lp = torch.log_softmax(res.logits[:, -1, :].float(), dim=-1)
        scores = lp[:, first_tok].clone()
        if need_tail:
            cache = res.past_key_values
            last = pos[:, -1:]
            for j, a in enumerate(answer_ids):
                if len(a) == 1:
                    continue
                feed = torch.tensor(a[:-1], dtype=torch.long).expand(len(idx), -1)
                tail_mask = torch.cat([mask, torch.ones_like(feed)], dim=1)
                tail_pos = last + 1 + torch.arange(feed.shape[1])
                r2 = model(
                    input_ids=feed,
                    attention_mask=tail_mask,
                    position_ids=tail_pos,
                    past_key_values=cache,
                    use_cache=True,
                )
                lp2 = torch.log_softmax(r2.logits.float(), dim=-1)
                target = torch.tensor(a[1:], dtype=torch.long).expand(len(idx), -1)
                scores[:, j] += lp2.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1)
                cache.crop(-feed.shape[1])  # drop the answer tokens again: back to the prompt
        out[idx] = scores
        bar.update(len(idx))
    bar.close()
    stats = ScoreStats(seconds=time.perf_counter() - t0, prompt_tokens=sum(len(p) for p in prompt_ids), n=n)
    return out, stats


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompt_ids: list[list[int]],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    desc: str | None = None,
) -> tuple[list[str], ScoreStats]:
    """Greedy decoding, batched and left-padded; stops at the end-of-turn token."""
    n = len(prompt_ids)
    texts: list[str] = [""] * n
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]))
    pad_id = tokenizer.pad_token_id
    t0 = time.perf_counter()
    out_tokens = 0
    bar = tqdm(total=n, desc=desc, unit="ex", disable=desc is None, dynamic_ncols=True)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        ids, mask = _left_pad([prompt_ids[i] for i in idx], pad_id)
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for j, i in enumerate(idx):
            new = gen[j, ids.shape[1] :].tolist()
            out_tokens += new.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in new else len(new)
            texts[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
        bar.update(len(idx))
    bar.close()
    stats = ScoreStats(
        seconds=time.perf_counter() - t0, prompt_tokens=sum(len(p) for p in prompt_ids), n=n, output_tokens=out_tokens
    )
    return texts, stats


_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The first number in a generated answer ("4", "4.5 stars", "Score: 3"), or None."""
    m = _NUMBER.search(text or "")
    if not m:
        return None
    try:
        value = float(m.group().replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class Answerer:
    """What evaluation and ``predict`` need from a model, whatever the method.

    ``score`` returns one log-likelihood per allowed answer (classification, answers in
    label order); ``generate`` decodes text. Causal LMs (the base model, merged LoRA,
    a 4-bit base with adapters, a soft prompt) use :class:`LMAnswerer`; a method that
    is not a language model (the linear probe) implements ``score`` itself.
    """

    can_generate: bool = True

    def score(self, prompt_ids, answer_ids, *, pad_id: int, batch_size: int = 16, desc: str | None = None):
        raise NotImplementedError

    def generate(self, tokenizer, prompt_ids, *, max_new_tokens: int, batch_size: int = 8, desc: str | None = None):
        raise NotImplementedError

    def regress(
        self,
        tokenizer,
        prompt_ids,
        *,
        fallback: float,
        max_new_tokens: int = 8,
        batch_size: int = 8,
        desc: str | None = None,
    ):
        """Numbers for regression: (values, stats, how many answers had no number and got ``fallback``).

        A language model writes its answer and the first number in it is taken; a head
        (the linear probe) overrides this and predicts the number directly.
        """
        texts, stats = self.generate(
            tokenizer, prompt_ids, max_new_tokens=max_new_tokens, batch_size=batch_size, desc=desc
        )
        parsed = [parse_number(t) for t in texts]
        return [fallback if v is None else v for v in parsed], stats, sum(v is None for v in parsed)


class LMAnswerer(Answerer):
    """Answers with a causal LM: answer log-likelihoods and greedy decoding."""

    def __init__(self, model):
        self.model = model

    def score(self, prompt_ids, answer_ids, *, pad_id, batch_size=16, desc=None):
        return score_answers(self.model, prompt_ids, answer_ids, pad_id=pad_id, batch_size=batch_size, desc=desc)

    def generate(self, tokenizer, prompt_ids, *, max_new_tokens, batch_size=8, desc=None):
        return generate(
            self.model, tokenizer, prompt_ids, max_new_tokens=max_new_tokens, batch_size=batch_size, desc=desc
        )
