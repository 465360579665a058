"""The training loop shared by the adapter methods: loss on the answer tokens only.

Why a hand-written loop rather than ``transformers.Trainer``: the output layer is
computed only at the positions that carry loss (a plain forward computes the
49k-vocabulary logits at every position, most of the time and memory of a small
model), and each random batch is cut into micro-batches of similar lengths so little
compute goes to padding.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import torch
import torch.nn.functional as F

from tunegate import checkpoints as checkpoints_mod
from tunegate import hardware
from tunegate.errors import TunegateError
from tunegate.progress import bar as progress_bar
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
    step counts (SST-2, 20 steps: 0.74-0.76 vs 0.84-0.855 with random batches).
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


def _sum_over_processes(acc, params, numbers: list[float]) -> list[float]:
    """All-reduce (sum) the trainable parameters' gradients and a few numbers across the processes, in one call."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [torch.tensor(numbers, dtype=torch.float32)])
    flat = acc.reduce(flat.to(params[0].device), reduction="sum").cpu()
    at = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[at : at + n].view_as(g).to(device=p.device, dtype=p.dtype)
        at += n
    return flat[at:].tolist()


class TrainingDiverged(TunegateError):
    """The loss became NaN or infinite: training stopped at that step."""


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _key(run_key: str, named: list[tuple[str, torch.Tensor]], settings: dict) -> str:
    """What a checkpoint must match to be resumed: the data and settings (``run_key``), the loop's own
    arguments, the trainable parameters' names and shapes."""
    shapes = [(n, list(p.shape)) for n, p in named]
    blob = json.dumps({"run": run_key, "settings": settings, "params": shapes}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def train_answer_loss(
    model,
    examples: list[tuple[list[int], list[int]]],
    *,
    loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    pad_id: int,
    epochs: int,
    batch_size: int,
    micro_batch_size: int | None = None,
    lr: float,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    max_steps: int | None = None,
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int | None = None,
    run_key: str = "",
    early_stopping=None,
    selection: list[tuple[list[int], list[int]]] | None = None,
    progress: bool = True,
) -> TrainStats:
    """Train ``model``'s trainable parameters (adapter or soft prompt) on (prompt_ids, answer_ids) pairs.

    ``loss_fn(batch)`` is the mean answer-token loss of a collated micro-batch (for LoRA:
    :func:`answer_only_loss` on ``model.get_base_model()``).

    With ``checkpoint_dir``, the whole training state is checkpointed at the end of each epoch and every
    ``checkpoint_every`` optimizer steps (:mod:`tunegate.checkpoints`), and training starts from the newest good
    checkpoint there whose key (``run_key``: the data and settings; the loop's arguments; the trainable
    parameters) matches: a retry or ``--resume`` continues where the killed run stopped, with the same batches,
    RNG and optimizer state, so it ends with the same weights and loss curve as an uninterrupted run.
    A NaN or infinite loss stops training (:class:`TrainingDiverged`, naming the step and the batch's rows); CUDA
    out-of-memory retries the step once with half the micro-batch (the update is the same).

    ``early_stopping`` (``methods.settings.EarlyStopping``) with ``selection`` pairs: the answer-token loss on those
    rows is measured at each epoch end (and every ``early_stopping.every`` steps); the best weights are kept (and
    checkpointed), training stops after ``patience`` evaluations without improvement, and the best weights are
    loaded at the end. ``TrainStats.extra["early_stopping"]`` has the curve and a verdict.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if not params:
        raise ValueError("the model has no trainable parameters")
    placement = hardware.current()
    acc = hardware.accelerator(placement)  # mixed precision (autocast, fp16 loss scaling) on the run's device
    device = params[0].device
    if placement.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    steps_per_epoch = math.ceil(len(examples) / batch_size)
    total = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)
    warmup = max(1, int(total * warmup_ratio))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    def lr_factor(s: int) -> float:  # linear warmup, then linear decay to zero
        if s < warmup:
            return (s + 1) / warmup
        return max(0.0, (total - s) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    opt = acc.prepare_optimizer(opt, device_placement=False)
    lengths = [len(p) + len(a) for p, a in examples]
    world, rank = acc.num_processes, acc.process_index  # data parallel: each process takes its share of a batch
    key = _key(
        run_key,
        named,
        dict(
            n=len(examples), epochs=epochs, batch_size=batch_size, micro=micro_batch_size, lr=lr,
            warmup_ratio=warmup_ratio, weight_decay=weight_decay, grad_clip=grad_clip, max_steps=max_steps,
            seed=seed, world=world, precision=placement.mixed_precision,
        ),
    )  # fmt: skip
    h = dict(losses=[], epoch_losses=[], ep_losses=[], step_seconds=[], step_tokens=[], n_tok=0, n_pad=0, elapsed=0.0)
    es = early_stopping if early_stopping is not None and selection else None
    h["dev"], h["best"], h["bad"], h["stopped"] = [], None, 0, None  # early stopping: curve, best (step, loss)
    best_params: dict[str, torch.Tensor] | None = None
    step = start_epoch = skip = 0
    epoch_rng = rng.getstate()
    resumed_from = None
    found = checkpoints_mod.latest(checkpoint_dir, key, map_location=device) if checkpoint_dir else None
    if found is not None:
        folder, state = found
        with torch.no_grad():
            for n, p in named:
                p.copy_(state["params"][n])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if acc.scaler is not None and state.get("scaler"):
            acc.scaler.load_state_dict(state["scaler"])
        step, start_epoch, skip = state["step"], state["epoch"], state["batch_in_epoch"]
        epoch_rng = _as_rng_state(state["epoch_rng"])
        _set_rng_states(state["rng"])
        h = {"dev": [], "best": None, "bad": 0, "stopped": None, **state["history"]}
        best_params = state.get("best_params")
        resumed_from = step
        if rank == 0:
            print(f"resuming training from checkpoint {folder.name}: {step} of {total} steps done")

    def save_state(epoch: int, batch_in_epoch: int, epoch_rng_state: tuple) -> None:
        state = {
            "params": {n: p.detach().cpu() for n, p in named},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "scaler": acc.scaler.state_dict() if acc.scaler is not None else None,
            "step": step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "epoch_rng": list(epoch_rng_state),  # the shuffling RNG at the start of ``epoch``
            "rng": _rng_states(),
            "history": {**h, "elapsed": h["elapsed"] + time.perf_counter() - t0},
            "best_params": best_params,
        }
        checkpoints_mod.save(checkpoint_dir, step, key, state)

    micro = micro_batch_size
    oom_retries: list[dict] = []

    def run_step(batch_idx: list[int], micro_now: int) -> tuple[float, int, int]:
        parts = [collate([examples[i] for i in m], pad_id) for m in micro_batches(batch_idx, lengths, micro_now)]
        n_answer = sum(int((b["labels"][:, 1:] != -100).sum()) for b in parts)
        loss_sum = 0.0
        tok = pad = 0
        for part in parts[rank::world]:
            share = int((part["labels"][:, 1:] != -100).sum()) / n_answer
            with acc.autocast():
                micro_loss = loss_fn({k: v.to(device) for k, v in part.items()}) * share
            acc.backward(micro_loss)
            loss_sum += micro_loss.item()
            tok += int(part["attention_mask"].sum())
            pad += part["input_ids"].numel()
        return loss_sum, tok, pad

    def selection_loss() -> float:
        """Mean answer-token loss on the selection rows (dropout off, no gradients)."""
        model.eval()
        total_loss = n_answer = 0.0
        with torch.no_grad():
            order_ = sorted(range(len(selection)), key=lambda i: len(selection[i][0]) + len(selection[i][1]))
            size = micro or batch_size
            for m in range(0, len(order_), size):
                part = collate([selection[i] for i in order_[m : m + size]], pad_id)
                n = int((part["labels"][:, 1:] != -100).sum())
                with acc.autocast():
                    total_loss += float(loss_fn({k: v.to(device) for k, v in part.items()})) * n
                n_answer += n
        model.train()
        return total_loss / max(n_answer, 1)

    def evaluate_selection() -> None:
        """One early-stopping evaluation: record it, keep the weights if best, count evaluations without progress."""
        nonlocal best_params
        loss = selection_loss()
        h["dev"].append([step, loss])
        if h["best"] is None or loss < h["best"][1] - es.min_delta:
            h["best"], h["bad"] = [step, loss], 0
            best_params = {n: p.detach().cpu().clone() for n, p in named}
        else:
            h["bad"] += 1
            if h["bad"] >= es.patience:
                h["stopped"] = step
        if rank == 0:
            bar.set_postfix(epoch=epoch + 1, loss=f"{h['losses'][-1]:.4f}", selection_loss=f"{loss:.4f}")

    model.train()
    bar = progress_bar(total, "tune", "step", enabled=progress and rank == 0, initial=step)
    t0 = time.perf_counter()
    with PeakRSS() as mem:
        start_rss = mem.peak_mb
        for epoch in range(start_epoch, epochs):
            if step >= total or h["stopped"] is not None:
                break
            if epoch > start_epoch or found is None:
                epoch_rng = rng.getstate()
            rng.setstate(epoch_rng)
            order = shuffled_batches(len(examples), batch_size, rng)  # the only use of rng: an epoch's order
            if epoch > start_epoch or skip == 0:
                skip = 0
                h["ep_losses"] = []
            for b, batch_idx in enumerate(order):
                if b < skip:
                    continue  # done before the checkpoint this run resumed from
                if step >= total:
                    break
                # gradient accumulation over micro-batches: the same update as one big batch
                # (each micro-batch's loss weighted by its share of answer tokens) at a
                # fraction of the activation memory
                t_step = time.perf_counter()
                micro_now = micro or math.ceil(len(batch_idx) / world)
                try:
                    loss_sum, tok, pad = run_step(batch_idx, micro_now)
                except torch.cuda.OutOfMemoryError:
                    if micro_now <= 1:
                        raise
                    opt.zero_grad(set_to_none=True)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    micro = max(1, micro_now // 2)  # the rest of training keeps the smaller micro-batch
                    oom_retries.append({"step": step + 1, "micro_batch_size": micro_now, "retried_with": micro})
                    if rank == 0:
                        print(f"out of memory at step {step + 1}: retrying with micro-batch {micro} (was {micro_now})")
                    loss_sum, tok, pad = run_step(batch_idx, micro)
                if world > 1:  # each process holds its parts' share of the gradient: their sum is the batch's
                    loss_sum, tok, pad = _sum_over_processes(acc, params, [loss_sum, tok, pad])
                if not math.isfinite(loss_sum):
                    rows = ", ".join(str(i) for i in sorted(batch_idx)[:20]) + (" ..." if len(batch_idx) > 20 else "")
                    raise TrainingDiverged(
                        f"training diverged: the loss is {loss_sum} at optimizer step {step + 1} of {total} "
                        f"(epoch {epoch + 1}; the batch of train rows {rows}, counted from 0). Lower method.lr "
                        f"(now {lr}) or method.grad_clip, or check those rows."
                    )
                h["n_tok"], h["n_pad"] = h["n_tok"] + int(tok), h["n_pad"] + int(pad)
                acc.clip_grad_norm_(params, grad_clip)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                h["step_seconds"].append(time.perf_counter() - t_step)
                h["step_tokens"].append(int(tok))
                h["losses"].append(loss_sum)
                h["ep_losses"].append(loss_sum)
                step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum:.4f}")
                epoch_end = b == len(order) - 1 or step >= total
                if epoch_end and h["ep_losses"]:
                    h["epoch_losses"].append(sum(h["ep_losses"]) / len(h["ep_losses"]))
                if es is not None and (epoch_end or (es.every and step % es.every == 0)):
                    evaluate_selection()
                due = epoch_end or (checkpoint_every and step % checkpoint_every == 0) or h["stopped"] is not None
                if checkpoint_dir is not None and due and rank == 0:
                    if epoch_end:  # the next epoch starts from the RNG as this epoch's shuffle left it
                        save_state(epoch + 1, 0, rng.getstate())
                    else:
                        save_state(epoch, b + 1, epoch_rng)
                if h["stopped"] is not None:
                    break
    seconds = h["elapsed"] + time.perf_counter() - t0
    bar.close()
    model.eval()
    extra = {}
    if es is not None:
        if best_params is not None:  # the weights of the best evaluation, not the last step's
            with torch.no_grad():
                for n, p in named:
                    p.copy_(best_params[n].to(p.device))
        extra["early_stopping"] = early_stopping_report(h, es, total, len(selection))
    if resumed_from is not None:
        extra["resumed_from_step"] = resumed_from
    if oom_retries:
        extra["oom_retries"] = oom_retries
    return TrainStats(
        seconds=seconds,
        steps=step,
        tokens=h["n_tok"],
        padded_tokens=h["n_pad"],
        peak_rss_mb=mem.peak_mb,
        losses=h["losses"],
        epoch_losses=h["epoch_losses"],
        checkpoints=[str(p) for _, p in checkpoints_mod.steps(checkpoint_dir)] if checkpoint_dir else [],
        start_rss_mb=start_rss,
        step_seconds=h["step_seconds"],
        step_tokens=h["step_tokens"],
        extra=extra,
    )


def early_stopping_report(h: dict, es, total: int, n_rows: int) -> dict:
    """The selection-loss curve, the step kept, and whether training converged, over- or under-fit, in words."""
    curve = h["dev"]
    best_step, best_loss = h["best"]
    last_step, last_loss = curve[-1]
    if h["stopped"] is not None:
        verdict = "overfit"
        words = (
            f"the selection loss stopped improving after step {best_step} ({best_loss:.4f}); training stopped at "
            f"step {h['stopped']} of {total} after {es.patience} evaluation(s) without improvement, and the weights of "
            f"step {best_step} were kept: more epochs would have over-fit"
        )
    elif best_step == last_step:
        verdict = "underfit"
        words = (
            f"the selection loss was still falling at the last evaluation (step {last_step}: {last_loss:.4f}): "
            "training had not converged; more epochs (or a higher lr) may help"
        )
    else:
        rose = last_loss > best_loss * 1.02
        verdict = "overfit" if rose else "converged"
        words = (
            f"best selection loss at step {best_step} ({best_loss:.4f}), "
            + (f"higher afterwards ({last_loss:.4f} at step {last_step}): over-fitting began" if rose else "flat after")
            + f"; the weights of step {best_step} were kept"
        )
    return {
        "curve": curve,
        "best_step": best_step,
        "best_loss": best_loss,
        "stopped_at": h["stopped"],
        "patience": es.patience,
        "every": es.every,
        "rows": n_rows,
        "verdict": verdict,
        "summary": words,
    }


def _as_rng_state(state) -> tuple:
    """``random.Random.getstate()`` back from its checkpointed (list) form."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
