"""The label scorer as it was before the prefix cache and the answer trie (tunegate d50747b), kept verbatim
(its padding helpers are unchanged and imported), and that version's few-shot chat prompt (the instruction
repeated in every demonstration turn), so benchmarks can put them side by side with today's in one run. Not
used by the product."""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from tunegate.scoring import ScoreStats, _left_pad, _positions


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


def legacy_prompt_ids(spec, tokenizer, texts: list[str], shots: list[list[tuple[str, str]]] | None) -> list[list[int]]:
    """Chat prompts as d50747b built them: every demonstration's user turn repeats the instruction."""
    b = spec.builder(tokenizer)
    budget = spec.input_budget(b)
    out = []
    for i, text in enumerate(texts):
        msgs = [{"role": "system", "content": b.prompt.system}] if b.prompt.system is not None else []
        for shot_text, shot_answer in shots[i] if shots is not None else ():
            msgs.append({"role": "user", "content": b.user_message(shot_text)})
            msgs.append({"role": "assistant", "content": shot_answer})
        msgs.append({"role": "user", "content": b.user_message(b.fit_text(text, budget))})
        out.append(b.encode(tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)))
    return out
