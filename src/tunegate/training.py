"""The pieces of the training loop shared by the adapter methods: loss on the answer tokens only, batches cut
into length-sorted micro-batches, the rows' shared prefix run once; the loop itself is ``training_run``.

Why a hand-written loop rather than ``transformers.Trainer``: the output layer is
computed only at the positions that carry loss (a plain forward computes the
49k-vocabulary logits at every position, most of the time and memory of a small
model), and each random batch is cut into micro-batches of similar lengths so little
compute goes to padding.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import psutil
import torch
import torch.nn.functional as F

from tunegate import hardware
from tunegate.scoring import hidden_after_shared_prefix, output_logits


class PeakRSS:
    """Samples this process's resident memory in a thread; ``peak_mb`` after the block."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc), so RSS reflects live memory."""
    import gc

    gc.collect()
    libc = hardware.glibc()
    if libc is not None:  # not glibc: nothing to trim
        libc.malloc_trim(0)


@dataclass
class TrainStats:
    """What a training run measured: time, steps, tokens, memory, the loss curve."""

    seconds: float
    steps: int
    tokens: int  # real (unpadded) tokens processed
    padded_tokens: int
    peak_rss_mb: float
    losses: list[float]
    epoch_losses: list[float]
    checkpoints: list[str] = field(default_factory=list)
    start_rss_mb: float = 0.0  # resident memory when the loop started (model loaded, no activations yet)
    step_seconds: list[float] = field(default_factory=list)  # wall time of each optimizer step
    step_tokens: list[int] = field(default_factory=list)  # real tokens of each optimizer step
    extra: dict = field(default_factory=dict)  # method-specific facts (e.g. the probe's validation accuracy)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def shuffled_batches(n: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Every row once, in random batches (what a shuffled DataLoader draws)."""
    idx = list(range(n))
    rng.shuffle(idx)
    return [idx[b : b + batch_size] for b in range(0, n, batch_size)]


def micro_batches(batch: list[int], lengths: list[int], micro: int) -> list[list[int]]:
    """A batch's rows sorted by length and cut into micro-batches of ``micro`` rows.

    Rows of similar length share a micro-batch, so little compute goes to padding, while
    the batch, and so the update (gradients accumulate over its micro-batches), stays the
    random one. Sorting whole batches by length instead (length-bucketed batches) made
    each update see only short or only long inputs: same speed, a worse model at small
    step counts (docs/BENCHMARKS.md).
    """
    rows = sorted(batch, key=lambda i: lengths[i])
    return [rows[m : m + micro] for m in range(0, len(rows), micro)]


def collate(examples: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 except on answer tokens)."""
    width = max(len(p) + len(a) for p, a in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (p, a) in enumerate(examples):
        seq = p + a
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p) : len(seq)] = torch.tensor(a)
        mask[i, : len(seq)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


SHARED_PREFIX_MIN_TOKENS = 16  # a micro-batch's rows sharing fewer first tokens run whole (not worth a second call)


def runs_shared_prefix(shared: int, rows: int) -> bool:
    """Whether a micro-batch of ``rows`` rows sharing ``shared`` first tokens runs them once (see answer_only_loss)."""
    return shared >= SHARED_PREFIX_MIN_TOKENS and rows > 1


def micro_batch_tokens(rows: int, longest: int, shared: int, checkpointing: bool) -> int:
    """Tokens a micro-batch of ``rows`` rows of ``longest`` tokens runs through the decoder, its shared prefix once."""
    if not checkpointing and runs_shared_prefix(shared, rows):
        return shared + rows * (longest - shared)
    return rows * longest


def micro_batch_cached_tokens(rows: int, shared: int, checkpointing: bool) -> int:
    """Prefix tokens a micro-batch's rows read through the expanded KV cache rather than compute (each row keeps
    its own copy of the prefix's keys and values for the backward pass); 0 when rows run whole."""
    return rows * shared if not checkpointing and runs_shared_prefix(shared, rows) else 0


def shared_prefix_length(batch: dict[str, torch.Tensor]) -> int:
    """How many first tokens every row of a collated batch shares, short of the first answer token's input."""
    ids, labels = batch["input_ids"], batch["labels"]
    same = (ids == ids[:1]).all(0).long().cumprod(0)
    shared = int(same.sum())
    has_answer = (labels != -100).any(0).nonzero()
    first_answer = int(has_answer[0]) if len(has_answer) else ids.shape[1]
    return min(shared, first_answer - 1)


def answer_only_loss(
    causal_lm, batch: dict[str, torch.Tensor], *, prefix_embeds: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy on answer tokens, with the output layer applied only where there is loss.

    The rows' shared first tokens (the chat header, system prompt, instruction: everything before the
    input) run once per micro-batch rather than once per row (:func:`scoring.hidden_after_shared_prefix`),
    as the scorer runs them once per rung; the loss is the same. ``prefix_embeds`` [V, hidden] (a soft
    prompt) go before every row. Gradient checkpointing keeps no KV cache, so with it rows run whole.
    """
    body = causal_lm.get_decoder()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    whole = getattr(body, "gradient_checkpointing", False) and body.training
    p = 0 if whole else shared_prefix_length(batch)
    if not whole and (prefix_embeds is not None or runs_shared_prefix(p, len(ids))):
        hidden = hidden_after_shared_prefix(causal_lm, ids, mask, p, prefix_embeds)
    elif prefix_embeds is not None:
        b, v, dev = len(ids), prefix_embeds.shape[0], ids.device
        embeds = torch.cat([prefix_embeds[None].expand(b, -1, -1), causal_lm.get_input_embeddings()(ids)], dim=1)
        pos = torch.arange(v + ids.shape[1], device=dev).expand(b, -1)
        full_mask = torch.cat([torch.ones((b, v), dtype=mask.dtype, device=dev), mask], dim=1)
        hidden = body(inputs_embeds=embeds, attention_mask=full_mask, position_ids=pos, use_cache=False)
        hidden, p = hidden.last_hidden_state[:, v:], 0
    else:
        hidden, p = body(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state, 0
    targets = batch["labels"][:, p + 1 :]
    where = targets != -100
    logits = output_logits(causal_lm, hidden[:, :-1][where])
    return F.cross_entropy(logits.float(), targets[where])
