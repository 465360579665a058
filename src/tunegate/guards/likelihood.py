"""Text likelihoods for the probes: the log-likelihood of each sequence's tail, and the KL divergence of one model's
next-token distribution from another's.

Rows are batched by length (right-padded; the decoder builds its own causal and padding masks, so every
architecture's attention pattern applies), the output layer runs only at the positions that are read, in chunks
that bound the memory of a large vocabulary, in float32 (``scoring.output_logits``). A soft prompt (prompt tuning)
goes before every row, as when it is served.
"""

from __future__ import annotations

import torch

from tunegate.progress import bar as progress_bar
from tunegate.scoring import HEAD_CHUNK_ELEMENTS, output_logits


def _hidden(lm, ids: torch.Tensor, mask: torch.Tensor, prefix: torch.Tensor | None) -> torch.Tensor:
    """The decoder's last hidden states for right-padded ``ids`` [b, t] (after ``prefix`` [V, h] when given: the
    returned states are those of the rows' own tokens)."""
    body, embed = lm.get_decoder(), lm.get_input_embeddings()
    dev = embed.weight.device
    ids, mask = ids.to(dev), mask.to(dev)
    if prefix is None:
        return body(input_ids=ids, attention_mask=mask).last_hidden_state
    b, v = ids.shape[0], prefix.shape[0]
    embeds = torch.cat([prefix.to(dev, embed.weight.dtype).expand(b, -1, -1), embed(ids)], dim=1)
    full = torch.cat([torch.ones((b, v), dtype=mask.dtype, device=dev), mask], dim=1)
    return body(inputs_embeds=embeds, attention_mask=full).last_hidden_state[:, v:]


def _batches(seqs: list[list[int]], batch_size: int, pad_id: int):
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
            mask[r, : len(seqs[i])] = 1
        yield idx, ids, mask


def _chunk_rows(lm) -> int:
    return max(1, HEAD_CHUNK_ELEMENTS // lm.get_output_embeddings().weight.shape[0])


@torch.inference_mode()
def tail_logprobs(
    lm,
    seqs: list[list[int]],
    starts: list[int],
    *,
    pad_id: int,
    prefix: torch.Tensor | None = None,
    batch_size: int = 16,
    desc: str | None = None,
) -> list[tuple[float, int]]:
    """(sum of log p(token | tokens before it), number of tokens) over ``seq[start:]`` for each sequence
    (``start`` >= 1: the first token is never predicted)."""
    out: list[tuple[float, int]] = [(0.0, 0)] * len(seqs)
    bar = progress_bar(len(seqs), desc, "seq")
    chunk = _chunk_rows(lm)
    for idx, ids, mask in _batches(seqs, batch_size, pad_id):
        hidden = _hidden(lm, ids, mask, prefix)
        rows, cols, targets = [], [], []
        for r, i in enumerate(idx):
            for t in range(max(starts[i], 1), len(seqs[i])):
                rows.append(r)
                cols.append(t - 1)
                targets.append(seqs[i][t])
        picked = hidden[torch.tensor(rows, device=hidden.device), torch.tensor(cols, device=hidden.device)]
        logp = torch.empty(len(targets), dtype=torch.float32)
        tgt = torch.tensor(targets)
        for c in range(0, len(targets), chunk):
            lp = torch.log_softmax(output_logits(lm, picked[c : c + chunk], float32=True).float(), dim=-1)
            logp[c : c + chunk] = lp.gather(1, tgt[c : c + chunk, None].to(lp.device))[:, 0].cpu()
        k = 0
        for r, i in enumerate(idx):
            m = len(seqs[i]) - max(starts[i], 1)
            out[i] = (float(logp[k : k + m].sum()), m)
            k += m
        bar.update(len(idx))
    bar.close()
    return out


@torch.inference_mode()
def mean_kl(
    candidate,
    base,
    seqs: list[list[int]],
    *,
    pad_id: int,
    prefix: torch.Tensor | None = None,
    batch_size: int = 8,
    desc: str | None = None,
) -> list[float]:
    """Per sequence: the mean over its positions of KL(candidate's next-token distribution || base's), in nats
    (``prefix``: the candidate's soft prompt)."""
    out = [0.0] * len(seqs)
    bar = progress_bar(len(seqs), desc, "seq")
    chunk = _chunk_rows(base)
    for idx, ids, mask in _batches(seqs, batch_size, pad_id):
        h_c, h_b = _hidden(candidate, ids, mask, prefix), _hidden(base, ids, mask, None)
        sel = mask.bool().to(h_b.device)
        pc, pb = h_c[sel.to(h_c.device)], h_b[sel]
        kl = torch.empty(pb.shape[0], dtype=torch.float32)
        for c in range(0, pb.shape[0], chunk):
            lc = torch.log_softmax(output_logits(candidate, pc[c : c + chunk], float32=True).float(), dim=-1)
            lb = torch.log_softmax(output_logits(base, pb[c : c + chunk], float32=True).float(), dim=-1).to(lc.device)
            kl[c : c + chunk] = (lc.exp() * (lc - lb)).sum(-1).clamp(min=0).cpu()
        counts = mask.sum(1).tolist()
        k = 0
        for r, i in enumerate(idx):
            out[i] = float(kl[k : k + counts[r]].mean()) if counts[r] else 0.0
            k += counts[r]
        bar.update(len(idx))
    bar.close()
    return out
