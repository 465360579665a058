"""Text likelihoods for the probes: the log-likelihood of continuations after a shared start (the start computed
once), and the KL divergence of one model's next-token distribution from another's.

Rows are batched by length; the tree scorer builds each layer type's mask as the ladder's scorer does
(``scoring._Masks``), the KL's right-padded rows let the decoder build its own. The output layer runs only at the
positions that are read, in chunks that bound the memory of a large vocabulary, in float32
(``scoring.output_logits``). A soft prompt (prompt tuning) goes before every row, as when it is served.
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
        return body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
    b, v = ids.shape[0], prefix.shape[0]
    embeds = torch.cat([prefix.to(dev, embed.weight.dtype).expand(b, -1, -1), embed(ids)], dim=1)
    full = torch.cat([torch.ones((b, v), dtype=mask.dtype, device=dev), mask], dim=1)
    return body(inputs_embeds=embeds, attention_mask=full, use_cache=False).last_hidden_state[:, v:]


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


def _tree_batch(batch: list, idx: list[int], v: int, pad_id: int):
    """One batch of :func:`tree_logprobs`: token ids (start, then every continuation), positions (restarting after
    the start for each continuation), the tree mask (after ``v`` soft-prompt positions) and what to read: (row in
    batch, position whose output predicts it, target token, row, part: -1 the start, j the j-th continuation)."""
    sizes = [len(s) + sum(len(t) for t in tails) for s, tails in batch]
    b, width = len(batch), v + max(sizes)
    ids = torch.full((b, width - v), pad_id, dtype=torch.long)
    pos = torch.arange(width).repeat(b, 1)  # padding keeps its own positions; it sees only itself
    allowed = torch.eye(width, dtype=torch.bool).repeat(b, 1, 1)
    if v:  # the soft prompt: causal among itself, seen by every later position
        allowed[:, :v, :v] = torch.ones((v, v), dtype=torch.bool).tril()
        allowed[:, v:, :v] = True
    reads: list[tuple[int, int, int, int, int]] = []
    for r, (i, (start, tails)) in enumerate(zip(idx, batch)):
        s = len(start)
        if s == 0:
            raise ValueError("a row's start needs at least one token (its last one predicts each continuation)")
        ids[r, :s] = torch.tensor(start)
        allowed[r, v : v + s, v : v + s] = torch.ones((s, s), dtype=torch.bool).tril()
        reads += [(r, v + k - 1, start[k], i, -1) for k in range(1, s)]
        at_col = v + s
        for j, tail in enumerate(tails):
            n = len(tail)
            ids[r, at_col - v : at_col - v + n] = torch.tensor(tail, dtype=torch.long)
            pos[r, at_col : at_col + n] = torch.arange(v + s, v + s + n)
            allowed[r, at_col : at_col + n, : v + s] = True
            allowed[r, at_col : at_col + n, at_col : at_col + n] = torch.ones((n, n), dtype=torch.bool).tril()
            reads += [(r, (v + s - 1) if k == 0 else at_col + k - 1, tail[k], i, j) for k in range(n)]
            at_col += n
    return ids, pos, allowed, reads


@torch.inference_mode()
def tree_logprobs(
    lm,
    rows: list[tuple[list[int], list[list[int]]]],
    *,
    pad_id: int,
    prefix: torch.Tensor | None = None,
    batch_size: int = 8,
    desc: str | None = None,
) -> list[tuple[tuple[float, int], list[tuple[float, int]]]]:
    """Each row is a shared start and its continuations (PIQA: a goal and its two solutions; CrowS: a pair's common
    first tokens and the two endings). Per row: the start's own (log-likelihood sum, tokens) from its second
    token, and each continuation's after the start.

    The start is computed once per row, as ``scoring.score_answers`` shares a prompt: one sequence holds the start
    and then every continuation; a tree mask lets each continuation see the start and itself only, its positions
    restarting after the start, so each equals the model's own forward on start + continuation (any layer type:
    ``scoring._Masks`` builds each one's mask). A soft prompt (``prefix`` [V, hidden]) goes first, seen by all.
    """
    from tunegate.scoring import _Masks

    body, embed = lm.get_decoder(), lm.get_input_embeddings()
    dev, masks = embed.weight.device, _Masks(lm)
    v = 0 if prefix is None else prefix.shape[0]
    out: list = [None] * len(rows)
    sizes = [len(s) + sum(len(t) for t in tails) for s, tails in rows]
    order = sorted(range(len(rows)), key=lambda i: sizes[i])
    bar = progress_bar(len(rows), desc, "row")
    chunk = _chunk_rows(lm)
    for at in range(0, len(order), batch_size):
        idx = order[at : at + batch_size]
        ids, pos, allowed, reads = _tree_batch([rows[i] for i in idx], idx, v, pad_id)
        b = len(idx)
        embeds = embed(ids.to(dev))
        if v:
            embeds = torch.cat([prefix.to(dev, embeds.dtype).expand(b, -1, -1), embeds], dim=1)
        pos, allowed = pos.to(dev), allowed.to(dev)
        mask = masks(allowed, pos, pos)
        hidden = body(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=False).last_hidden_state
        where = torch.tensor([x[:2] for x in reads], device=dev)
        picked = hidden[where[:, 0], where[:, 1]]
        tgt = torch.tensor([x[2] for x in reads])
        logp = torch.empty(len(reads), dtype=torch.float32)
        for c in range(0, len(reads), chunk):
            lp = torch.log_softmax(output_logits(lm, picked[c : c + chunk], float32=True).float(), dim=-1)
            logp[c : c + chunk] = lp.gather(1, tgt[c : c + chunk, None].to(lp.device))[:, 0].cpu()
        sums: dict[tuple[int, int], list[float]] = {}
        for (_, _, _, i, part), value in zip(reads, logp.tolist()):
            acc = sums.setdefault((i, part), [0.0, 0])
            acc[0] += value
            acc[1] += 1
        for i in idx:
            own = tuple(sums.get((i, -1), [0.0, 0]))
            out[i] = (own, [tuple(sums.get((i, j), [0.0, 0])) for j in range(len(rows[i][1]))])
        bar.update(b)
    bar.close()
    return out
