"""Scoring prompts with a causal LM: label log-likelihoods and greedy generation.

Classification never parses free text: each allowed answer's log-likelihood is
computed after the prompt and the best one wins. The scorer works close to the
compute floor of a forward pass:

- **shared prefix, computed once**: the rows of a rung share their first tokens
  (chat header, system prompt, instruction, fixed demonstrations, a soft prompt).
  That prefix is encoded once per call and its KV cache reused for every row, so
  only each row's own tokens are computed;
- **all answers in one pass, as a trie**: the answers' tokens form a trie whose
  nodes (each proper prefix of an answer, shared prefixes once) are fed after each
  row's own tokens in the *same* forward, with a tree-shaped attention mask (a node
  sees the prompt and its ancestors only);
- **the output layer only where it is read**: the decoder's hidden states are taken
  at each row's last token and at the trie nodes, and only there does the
  (often huge: 262k for Gemma 3) vocabulary projection run.

The attention mask is built here for every layer type the model declares (full or
sliding-window attention), so the result equals the model's own forward on the
concatenated prompt and answer; ``tests/unit/test_architectures.py`` checks that per
architecture.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
import time
from dataclasses import dataclass, field

import torch

from tunegate.progress import bar as progress_bar

HEAD_CHUNK_ELEMENTS = 2**25  # logits computed at once (x4 bytes): bounds the memory of a 262k vocabulary


@dataclass
class ScoreStats:
    """Time and tokens of a scoring or generation pass."""

    seconds: float
    prompt_tokens: int  # real (unpadded) prompt tokens
    n: int
    output_tokens: int = 0  # generated tokens up to and including the end-of-turn token (generation only)
    computed_tokens: int = 0  # tokens the scorer actually ran through the model (shared prefix once, trie nodes)
    batch_seconds: list[tuple[int, float]] = field(default_factory=list)  # (rows, wall seconds) of each batch


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


def output_logits(causal_lm, hidden: torch.Tensor, *, float32: bool = False) -> torch.Tensor:
    """The model's output layer on ``hidden``, as its own forward applies it (training and scoring both use this).

    Besides the (often tied) projection, some architectures transform the logits:
    soft-capping (Gemma 2, some Gemma 3 configs), a scale (Cohere) or a divisor (Granite).
    ``float32``: project in float32 even when the model runs in 16-bit (the scorer reads few
    positions; logits rounded to bf16 would move a label's log-prob by up to ~0.25 each token).
    """
    head = causal_lm.get_output_embeddings()
    if float32 and hidden.dtype != torch.float32 and type(head) is torch.nn.Linear:
        bias = None if head.bias is None else head.bias.float()
        logits = torch.nn.functional.linear(hidden.float(), head.weight.float(), bias)
    else:
        logits = head(hidden)
    cfg = causal_lm.config.get_text_config()
    cap = getattr(cfg, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    scale = getattr(cfg, "logit_scale", None)
    if scale is not None and not isinstance(scale, bool):
        logits = logits * scale
    divisor = getattr(cfg, "logits_scaling", None)
    if divisor:
        logits = logits / divisor
    return logits


@dataclass(frozen=True)
class AnswerTrie:
    """The answers' tokens as a trie: every proper prefix of an answer is one node, fed once per row.

    Node ``n`` feeds token ``token[n]`` at depth ``depth[n]`` after the prompt; its output
    is the distribution of the token that follows that prefix. An answer's score is the
    first token's log-prob at the prompt's last position plus, for each later token, its
    log-prob at the node of the prefix before it (``steps``).
    """

    first: tuple[int, ...]  # each answer's first token
    token: tuple[int, ...]
    parent: tuple[int, ...]  # -1: the node follows the prompt directly
    depth: tuple[int, ...]
    steps: tuple[tuple[tuple[int, int], ...], ...]  # per answer: (node, next token) for its tokens after the first

    @classmethod
    def build(cls, answers: list[list[int]]) -> "AnswerTrie":
        if any(not a for a in answers):
            raise ValueError("an answer has no tokens")
        nodes: dict[tuple[int, ...], int] = {}
        token, parent, depth = [], [], []
        steps = []
        for a in answers:
            mine = []
            for t in range(1, len(a)):
                key = tuple(a[:t])
                if key not in nodes:
                    nodes[key] = len(token)
                    token.append(a[t - 1])
                    parent.append(nodes[key[:-1]] if t > 1 else -1)
                    depth.append(t - 1)
                mine.append((nodes[key], a[t]))
            steps.append(tuple(mine))
        return cls(tuple(a[0] for a in answers), tuple(token), tuple(parent), tuple(depth), tuple(steps))

    def __len__(self) -> int:
        return len(self.token)

    def sees(self) -> torch.Tensor:
        """[N, N] bool: node i attends to node j (j is i or one of its ancestors)."""
        n = len(self)
        out = torch.eye(n, dtype=torch.bool)
        for i in range(n):
            j = self.parent[i]
            while j >= 0:
                out[i, j] = True
                j = self.parent[j]
        return out


def _attention_windows(causal_lm) -> dict[str, int | None] | int | None:
    """The attention span of each layer type (None: full), or one span for all layers.

    A dict means the decoder takes one mask per layer type (``config.layer_types``).
    """
    cfg = causal_lm.config.get_text_config()
    window = getattr(cfg, "sliding_window", None)
    if getattr(cfg, "use_sliding_window", True) is False:
        window = None
    layer_types = getattr(cfg, "layer_types", None)
    if not layer_types:
        return window
    spans: dict[str, int | None] = {}
    for kind in set(layer_types):
        if kind == "full_attention":
            spans[kind] = None
        elif kind == "sliding_attention":
            spans[kind] = window
        else:
            raise NotImplementedError(
                f"{type(causal_lm).__name__} has '{kind}' layers, which the label scorer does not support yet"
            )
    return spans


class _Masks:
    """Builds the 4-D attention mask(s) the decoder takes as given, in the form its attention kernel expects."""

    def __init__(self, causal_lm):
        self.windows = _attention_windows(causal_lm)
        self.boolean = causal_lm.config.get_text_config()._attn_implementation == "sdpa"

    def __call__(self, allowed: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor):
        """``allowed`` [B, Q, K] (causal/tree visibility), positions [B, Q] and [B, K] for the windows."""

        def one(window: int | None) -> torch.Tensor:
            ok = allowed if window is None else allowed & ((q_pos[:, :, None] - k_pos[:, None, :]) < window)
            ok = ok[:, None]
            if self.boolean:
                return ok
            return torch.zeros(ok.shape, device=ok.device).masked_fill_(~ok, torch.finfo(torch.float32).min)

        if isinstance(self.windows, dict):
            return {kind: one(w) for kind, w in self.windows.items()}
        return one(self.windows)


def common_prefix_length(seqs: list[list[int]]) -> int:
    """Length of the token prefix all sequences share."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def shared_prompt_prefix(prompt_ids: list[list[int]]) -> int:
    """How many first tokens the prompts share, leaving each at least its last token (whose output is read)."""
    return max(0, min(common_prefix_length(prompt_ids), min((len(s) for s in prompt_ids), default=1) - 1))


@functools.lru_cache(maxsize=None)
def _cache_argument(decoder_class: type) -> str:
    """The KV cache argument's name in this transformers version (``cache`` replaced ``past_key_values`` in 5.x);
    looked up once per decoder class."""
    import inspect

    return "cache" if "cache" in inspect.signature(decoder_class.forward).parameters else "past_key_values"


def _cache_kwargs(body, cache) -> dict:
    return {_cache_argument(type(body)): cache, "use_cache": cache is not None}


def _prefix_cache(body, embed, masks: _Masks, prefix_ids: list[int], prefix_embeds: torch.Tensor | None):
    """Run the shared prefix once; its per-layer (keys, values) with batch 1, and its length."""
    dev = embed.weight.device
    parts = [] if prefix_embeds is None else [prefix_embeds[None].to(device=dev, dtype=embed.weight.dtype)]
    if prefix_ids:
        parts.append(embed(torch.tensor([prefix_ids], dtype=torch.long, device=dev)))
    if not parts:
        return None, 0
    from transformers import DynamicCache

    embeds = torch.cat(parts, dim=1)
    n = embeds.shape[1]
    pos = torch.arange(n, device=dev)[None]
    allowed = torch.ones((n, n), dtype=torch.bool, device=dev).tril()[None]
    cache = DynamicCache()
    body(inputs_embeds=embeds, attention_mask=masks(allowed, pos, pos), position_ids=pos, **_cache_kwargs(body, cache))
    return [(layer.keys, layer.values) for layer in cache.layers], n


def hidden_after_shared_prefix(
    causal_lm,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    p: int,
    prefix_embeds: torch.Tensor | None = None,
    layer: int = -1,
) -> torch.Tensor:
    """The decoder's last hidden states at positions ``p..`` of right-padded rows that share their first ``p`` tokens.

    The shared tokens (after ``prefix_embeds`` [V, hidden], a soft prompt, if given) run once, at batch 1, and
    their KV cache, expanded to the rows, serves every row: what the scorer does, here with gradients (training
    pays a long shared instruction, e.g. a 150-label list, once per micro-batch instead of once per row).
    Equals the decoder's own forward on the whole rows at those positions (``tests/unit/test_architectures.py``);
    a soft prompt's positions come first, so the rows' positions are shifted by V. ``layer`` other than -1:
    that entry of the decoder's hidden states instead (0 = embeddings; the probe's features).
    """
    from transformers import DynamicCache

    body, embed = causal_lm.get_decoder(), causal_lm.get_input_embeddings()
    dev = input_ids.device
    masks = _Masks(causal_lm)
    prefix_kv, off = _prefix_cache(body, embed, masks, input_ids[0, :p].tolist(), prefix_embeds)
    ids = input_ids[:, p:]
    b, s = ids.shape
    real = attention_mask[:, p:].bool()
    col = torch.arange(s, device=dev)
    q_pos = (off + col).expand(b, -1)
    k_pos = torch.cat([torch.arange(off, device=dev).expand(b, -1), q_pos], dim=1)
    allowed = torch.zeros((b, s, off + s), dtype=torch.bool, device=dev)
    allowed[:, :, :off] = True
    allowed[:, :, off:] = torch.ones((s, s), dtype=torch.bool, device=dev).tril() & real[:, None, :]
    allowed[:, col, off + col] = True  # padding sees itself (no empty softmax); it carries no loss
    cache = None
    if prefix_kv is not None:
        cache = DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in prefix_kv])
    out = body(
        input_ids=ids,
        attention_mask=masks(allowed, q_pos, k_pos),
        position_ids=q_pos,
        output_hidden_states=layer != -1,
        **_cache_kwargs(body, cache),
    )
    return out.last_hidden_state if layer == -1 else out.hidden_states[layer]


def _rows_cache(per_row: list):
    """A KV cache for a batch from each row's shared-prefix cache (batch 1 each): one expanded view when every
    row has the same, else the rows' caches stacked."""
    from transformers import DynamicCache

    first = per_row[0]
    if all(kv is first for kv in per_row):
        b = len(per_row)
        return DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in first])
    layers = zip(*per_row)
    return DynamicCache(
        ddp_cache_data=[(torch.cat([k for k, _ in kvs]), torch.cat([v for _, v in kvs])) for kvs in layers]
    )


def _rows_and_answers(own: list[list[int]], nodes: tuple[torch.Tensor, ...], off: int, pad_id: int):
    """One scoring batch's inputs: each row's own tokens (right-padded), then every answer-trie node (``nodes``:
    their tokens, depths and who-sees-whom, built once per call), with the positions and the attention that lets a
    node see its row and its ancestors (after ``off`` prefix tokens)."""
    node_tok, depth, node_sees = nodes
    b, n_nodes = len(own), len(node_tok)
    lens = torch.tensor([len(s) for s in own])
    width = int(lens.max())
    q = width + n_nodes
    ids = torch.full((b, q), pad_id, dtype=torch.long)
    for r, s in enumerate(own):
        ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
    ids[:, width:] = node_tok
    col = torch.arange(width)
    real = col[None, :] < lens[:, None]  # [b, width]
    q_pos = torch.cat([off + col.expand(b, -1), off + lens[:, None] + depth[None, :]], dim=1)
    k_pos = torch.cat([torch.arange(off).expand(b, -1), q_pos], dim=1)
    allowed = torch.zeros((b, q, off + q), dtype=torch.bool)
    allowed[:, :, :off] = True
    allowed[:, :width, off : off + width] = torch.ones((width, width), dtype=torch.bool).tril() & real[:, None, :]
    allowed[:, width:, off : off + width] = real[:, None, :]
    allowed[:, width:, off + width :] = node_sees
    allowed[:, torch.arange(q), off + torch.arange(q)] = True  # padding rows see themselves (no empty softmax)
    return lens, width, ids, q_pos, k_pos, allowed


@torch.inference_mode()
def score_answers(
    model,
    prompt_ids: list[list[int]],
    answer_ids: list[list[int]],
    *,
    pad_id: int,
    batch_size: int = 16,
    desc: str | None = None,
    prefix_embeds: torch.Tensor | None = None,
    row_groups: list | None = None,
    group_context=None,
) -> tuple[torch.Tensor, ScoreStats]:
    """Log-likelihood of every answer after every prompt: a float tensor [n_prompts, n_answers].

    ``prefix_embeds`` [V, hidden] (a soft prompt) go before every prompt, at positions 0..V-1.
    ``row_groups`` (one hashable per prompt) with ``group_context(groups of a forward's rows)``, a context manager:
    rows of different groups share a batch, each forward runs inside the context for its rows (several adapters
    of one base, ``tunegate.adapters``), and the shared prefix runs once per group.
    """
    n, n_ans = len(prompt_ids), len(answer_ids)
    out = torch.empty((n, n_ans), dtype=torch.float32)
    t0 = time.perf_counter()
    body, embed = model.get_decoder(), model.get_input_embeddings()
    dev = embed.weight.device
    masks = _Masks(model)
    trie = AnswerTrie.build(answer_ids)
    n_nodes = len(trie)
    # every row keeps at least its last token: that position gives the first answer token's distribution
    p = shared_prompt_prefix(prompt_ids)
    groups = list(row_groups) if row_groups is not None else [None] * n
    in_groups = group_context or (lambda _rows: contextlib.nullcontext())
    group_kv, off = {}, 0
    for g in dict.fromkeys(groups):
        with in_groups([g]):
            group_kv[g], off = _prefix_cache(body, embed, masks, prompt_ids[0][:p] if n else [], prefix_embeds)
    computed = off * len(group_kv)
    first = torch.tensor(trie.first, dtype=torch.long)
    nodes = (torch.tensor(trie.token, dtype=torch.long), torch.tensor(trie.depth, dtype=torch.long), trie.sees())
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]))
    bar = progress_bar(n, desc, "ex")
    batches = []
    for start in range(0, n, batch_size):
        t_batch = time.perf_counter()
        idx = order[start : start + batch_size]
        b = len(idx)
        own = [prompt_ids[i][p:] for i in idx]
        lens, width, ids, q_pos, k_pos, allowed = _rows_and_answers(own, nodes, off, pad_id)
        ids, q_pos, k_pos, allowed = (t.to(dev) for t in (ids, q_pos, k_pos, allowed))
        rows_of = [groups[i] for i in idx]
        cache = _rows_cache([group_kv[g] for g in rows_of]) if off else None
        with in_groups(rows_of):
            hidden = body(
                input_ids=ids,
                attention_mask=masks(allowed, q_pos, k_pos),
                position_ids=q_pos,
                **_cache_kwargs(body, cache),
            ).last_hidden_state
        last = hidden[torch.arange(b, device=dev), (lens - 1).to(dev)]
        read = torch.cat([last[:, None], hidden[:, width:]], dim=1)  # [b, 1 + N, h]
        computed += int(lens.sum()) + b * n_nodes
        scores = torch.empty((b, n_ans), dtype=torch.float32)
        rows = max(1, HEAD_CHUNK_ELEMENTS // ((1 + n_nodes) * model.get_output_embeddings().weight.shape[0]))
        for c in range(0, b, rows):
            with in_groups(rows_of[c : c + rows]):
                logits = output_logits(model, read[c : c + rows], float32=True)
            lp = torch.log_softmax(logits.float(), dim=-1)
            s = lp[:, 0, first.to(dev)]
            for j, st in enumerate(trie.steps):
                for node, tok in st:
                    s[:, j] += lp[:, 1 + node, tok]
            scores[c : c + rows] = s.cpu()
        out[idx] = scores
        batches.append((b, time.perf_counter() - t_batch))
        bar.update(b)
    bar.close()
    stats = ScoreStats(
        seconds=time.perf_counter() - t0,
        prompt_tokens=sum(len(s) for s in prompt_ids),
        n=n,
        computed_tokens=computed,
        batch_seconds=batches,
    )
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
    stop_ids: list[int] | None = None,
    options: dict | None = None,
) -> tuple[list[str], ScoreStats]:
    """Greedy decoding, batched and left-padded; stops at a stop token (default: eos), which is not returned.

    ``options``: more ``model.generate`` arguments (a served request's sampling, streamer, stopping criteria)."""
    stops = list(stop_ids) if stop_ids else [tokenizer.eos_token_id]
    n = len(prompt_ids)
    texts: list[str] = [""] * n
    order = sorted(range(n), key=lambda i: len(prompt_ids[i]))
    pad_id = tokenizer.pad_token_id
    t0 = time.perf_counter()
    out_tokens = 0
    bar = progress_bar(n, desc, "ex")
    batches = []
    for start in range(0, n, batch_size):
        t_batch = time.perf_counter()
        idx = order[start : start + batch_size]
        ids, mask = _left_pad([prompt_ids[i] for i in idx], pad_id)
        dev = model.get_input_embeddings().weight.device if hasattr(model, "get_input_embeddings") else ids.device
        ids, mask = ids.to(dev), mask.to(dev)
        gen = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            pad_token_id=pad_id,
            eos_token_id=stops,
            **{"do_sample": False, **(options or {})},
        )
        for j, i in enumerate(idx):
            new = gen[j, ids.shape[1] :].tolist()
            end = next((k for k, t in enumerate(new) if t in stops), None)
            out_tokens += len(new) if end is None else end + 1
            texts[i] = tokenizer.decode(new[:end], skip_special_tokens=True).strip()
        batches.append((len(idx), time.perf_counter() - t_batch))
        bar.update(len(idx))
    bar.close()
    stats = ScoreStats(
        seconds=time.perf_counter() - t0,
        prompt_tokens=sum(len(p) for p in prompt_ids),
        n=n,
        output_tokens=out_tokens,
        batch_seconds=batches,
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

    def generate(
        self,
        tokenizer,
        prompt_ids,
        *,
        max_new_tokens: int,
        batch_size: int = 8,
        desc: str | None = None,
        stop_ids: list[int] | None = None,
        options: dict | None = None,
    ):
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
        stop_ids: list[int] | None = None,
    ):
        """Numbers for regression: (values, stats, how many answers had no number and got ``fallback``).

        A language model writes its answer and the first number in it is taken; a head
        (the linear probe) overrides this and predicts the number directly.
        """
        texts, stats = self.generate(
            tokenizer, prompt_ids, max_new_tokens=max_new_tokens, batch_size=batch_size, desc=desc, stop_ids=stop_ids
        )
        parsed = [parse_number(t) for t in texts]
        return [fallback if v is None else v for v in parsed], stats, sum(v is None for v in parsed)


class LMAnswerer(Answerer):
    """Answers with a causal LM: answer log-likelihoods and greedy decoding.

    ``model`` decodes (``generate``); the scorer runs ``lm``'s decoder and output layer
    (the same model unless a wrapper decodes, as a soft prompt does) with
    ``prefix_embeds`` (a soft prompt) before every prompt.
    """

    def __init__(self, model, *, lm=None, prefix_embeds: torch.Tensor | None = None):
        self.model = model
        self.lm = model if lm is None else lm
        self.prefix_embeds = prefix_embeds

    def score(self, prompt_ids, answer_ids, *, pad_id, batch_size=16, desc=None):
        return score_answers(
            self.lm,
            prompt_ids,
            answer_ids,
            pad_id=pad_id,
            batch_size=batch_size,
            desc=desc,
            prefix_embeds=self.prefix_embeds,
        )

    def generate(self, tokenizer, prompt_ids, *, max_new_tokens, batch_size=8, desc=None, stop_ids=None, options=None):
        return generate(
            self.model,
            tokenizer,
            prompt_ids,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            desc=desc,
            stop_ids=stop_ids,
            options=options,
        )
