"""One run of the shared answer-token training loop, with callbacks.

A :class:`TrainingRun` owns what every optimizer step needs: the trainable parameters, AdamW with linear warmup
and decay, the mixed-precision accelerator, the shuffling RNG and the order of batches, gradient accumulation over
length-sorted micro-batches, the data-parallel all-reduce, the divergence check and the CUDA out-of-memory retry.
Everything else is a :class:`Callback` called at the loop's points (transformers' ``TrainerCallback`` shape):
the loss history (:class:`LossHistory`), early stopping on the selection split (:class:`EarlyStopper`), the
progress bar (:class:`ProgressBar`) and checkpoints with resuming (:class:`Checkpointing`); a tracking backend
is one more callback.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from tunegate import hardware, tracking
from tunegate.errors import TunegateError
from tunegate.training import PeakRSS, TrainStats, collate, micro_batches, shuffled_batches
from tunegate.training_callbacks import (
    Callback,
    Checkpointing,
    EarlyStopper,
    LossHistory,
    ProgressBar,
    SelectionWatch,
    StepResult,
    Tracking,
)


class TrainingDiverged(TunegateError):
    """The loss became NaN or infinite: training stopped at that step."""


@dataclass(frozen=True)
class LoopSettings:
    """The loop's own settings (a method's ``GradientSettings.loop_settings()``)."""

    epochs: int
    batch_size: int
    lr: float
    micro_batch_size: int | None = None
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    max_steps: int | None = None
    seed: int = 0


class TrainingRun:
    """Train ``model``'s trainable parameters (adapter or soft prompt) on (prompt_ids, answer_ids) pairs.

    ``loss_fn(batch)`` is the mean answer-token loss of a collated micro-batch (for LoRA:
    ``training.answer_only_loss`` on ``model.get_base_model()``). A NaN or infinite loss stops training
    (:class:`TrainingDiverged`, naming the step and the batch's rows); CUDA out-of-memory retries the step once
    with half the micro-batch (the update is the same) and keeps the smaller one.
    """

    def __init__(
        self,
        model,
        examples: list[tuple[list[int], list[int]]],
        *,
        loss_fn: Callable[[dict[str, torch.Tensor]], torch.Tensor],
        pad_id: int,
        settings: LoopSettings,
        callbacks: list[Callback],
    ):
        self.model, self.examples, self.loss_fn, self.pad_id = model, examples, loss_fn, pad_id
        self.settings = s = settings
        self.callbacks = callbacks
        torch.manual_seed(s.seed)
        self.rng = random.Random(s.seed)
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in self.named]
        if not self.params:
            raise ValueError("the model has no trainable parameters")
        self.placement = hardware.current()
        self.acc = hardware.accelerator(self.placement)  # mixed precision (autocast, fp16 loss scaling)
        self.device = self.params[0].device
        if self.placement.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        steps_per_epoch = math.ceil(len(examples) / s.batch_size)
        self.total = s.epochs * steps_per_epoch if s.max_steps is None else min(s.max_steps, s.epochs * steps_per_epoch)
        warmup = max(1, int(self.total * s.warmup_ratio))
        total = self.total

        def lr_factor(step: int) -> float:  # linear warmup, then linear decay to zero
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        opt = torch.optim.AdamW(self.params, lr=s.lr, weight_decay=s.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
        self.opt = self.acc.prepare_optimizer(opt, device_placement=False)
        self.lengths = [len(p) + len(a) for p, a in examples]
        self.world, self.rank = self.acc.num_processes, self.acc.process_index  # each process: its share of a batch
        self.micro = s.micro_batch_size
        # where the loop is (a resumed run starts from its checkpoint's values)
        self.step = self.start_epoch = self.skip = 0
        self.epoch = 0
        self.epoch_rng = self.rng.getstate()  # the shuffling RNG at the start of the current epoch
        self.resumed_from: int | None = None
        self.elapsed_before = 0.0  # seconds trained before a resume
        self.t0 = 0.0
        self.stop_requested = False  # a callback asks the loop to stop after this step
        self.postfix: dict[str, Any] = {}  # what the progress bar shows beside its count
        self.last: StepResult | None = None
        self.oom_retries: list[dict] = []

    def callback(self, kind: type) -> Any:
        """The run's callback of ``kind``, or None."""
        return next((c for c in self.callbacks if isinstance(c, kind)), None)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0

    def key(self, run_key: str) -> str:
        """What a checkpoint must match to be resumed: the data and settings (``run_key``), the loop's own
        settings and process count and precision, the trainable parameters' names and shapes."""
        s = self.settings
        loop = dict(
            n=len(self.examples), epochs=s.epochs, batch_size=s.batch_size, micro=s.micro_batch_size, lr=s.lr,
            warmup_ratio=s.warmup_ratio, weight_decay=s.weight_decay, grad_clip=s.grad_clip, max_steps=s.max_steps,
            seed=s.seed, world=self.world, precision=self.placement.mixed_precision,
        )  # fmt: skip
        shapes = [(n, list(p.shape)) for n, p in self.named]
        blob = json.dumps({"run": run_key, "settings": loop, "params": shapes}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    # ---- one optimizer step

    def _accumulate(self, batch_idx: list[int], micro: int) -> tuple[float, int, int]:
        """Forward and backward over the batch's micro-batches (each loss weighted by its share of the batch's
        answer tokens: the same update as one big batch, at a fraction of the activation memory)."""
        parts = [
            collate([self.examples[i] for i in m], self.pad_id) for m in micro_batches(batch_idx, self.lengths, micro)
        ]
        n_answer = sum(int((b["labels"][:, 1:] != -100).sum()) for b in parts)
        loss_sum = 0.0
        tok = pad = 0
        for part in parts[self.rank :: self.world]:
            share = int((part["labels"][:, 1:] != -100).sum()) / n_answer
            with self.acc.autocast():
                micro_loss = self.loss_fn({k: v.to(self.device) for k, v in part.items()}) * share
            self.acc.backward(micro_loss)
            loss_sum += micro_loss.item()
            tok += int(part["attention_mask"].sum())
            pad += part["input_ids"].numel()
        return loss_sum, tok, pad

    def _gradients(self, batch_idx: list[int]) -> tuple[float, int, int]:
        micro_now = self.micro or math.ceil(len(batch_idx) / self.world)
        try:
            return self._accumulate(batch_idx, micro_now)
        except torch.cuda.OutOfMemoryError:
            if micro_now <= 1:
                raise
            self.opt.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.micro = max(1, micro_now // 2)  # the rest of training keeps the smaller micro-batch
            self.oom_retries.append({"step": self.step + 1, "micro_batch_size": micro_now, "retried_with": self.micro})
            if self.rank == 0:
                print(
                    f"out of memory at step {self.step + 1}: retrying with micro-batch {self.micro} (was {micro_now})"
                )
            return self._accumulate(batch_idx, self.micro)

    def _optimizer_step(self, batch_idx: list[int], epoch: int) -> tuple[float, int, int]:
        loss_sum, tok, pad = self._gradients(batch_idx)
        if self.world > 1:  # each process holds its parts' share of the gradient: their sum is the batch's
            loss_sum, tok, pad = _sum_over_processes(self.acc, self.params, [loss_sum, tok, pad])
        if not math.isfinite(loss_sum):
            rows = ", ".join(str(i) for i in sorted(batch_idx)[:20]) + (" ..." if len(batch_idx) > 20 else "")
            raise TrainingDiverged(
                f"training diverged: the loss is {loss_sum} at optimizer step {self.step + 1} of {self.total} "
                f"(epoch {epoch + 1}; the batch of train rows {rows}, counted from 0). Lower method.lr "
                f"(now {self.settings.lr}) or method.grad_clip, or check those rows."
            )
        self.acc.clip_grad_norm_(self.params, self.settings.grad_clip)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return loss_sum, tok, pad

    # ---- the run

    def fit(self) -> TrainStats:
        """Train until the last step, or until a callback asks to stop; the callbacks' reports in ``extra``."""
        checkpointing = self.callback(Checkpointing)
        if checkpointing is not None:  # before anything starts: a resumed run continues from its checkpoint
            checkpointing.restore(self)
        self.model.train()
        self.t0 = time.perf_counter()
        with PeakRSS() as mem:
            start_rss = mem.peak_mb
            for cb in self.callbacks:
                cb.on_train_begin(self)
            self._epochs()
        seconds = self.elapsed()
        self.model.eval()
        for cb in self.callbacks:
            cb.on_train_end(self)
        history = self.callback(LossHistory)
        extra: dict[str, Any] = {}
        for cb in self.callbacks:
            extra.update(cb.report())
        if self.resumed_from is not None:
            extra["resumed_from_step"] = self.resumed_from
        if self.oom_retries:
            extra["oom_retries"] = self.oom_retries
        return TrainStats(
            seconds=seconds,
            steps=self.step,
            tokens=history.tokens,
            padded_tokens=history.padded_tokens,
            peak_rss_mb=mem.peak_mb,
            losses=history.losses,
            epoch_losses=history.epoch_losses,
            checkpoints=checkpointing.paths() if checkpointing is not None else [],
            start_rss_mb=start_rss,
            step_seconds=history.step_seconds,
            step_tokens=history.step_tokens,
            extra=extra,
        )

    def _epochs(self) -> None:
        s = self.settings
        for epoch in range(self.start_epoch, s.epochs):
            if self.step >= self.total or self.stop_requested:
                break
            self.epoch = epoch
            if epoch > self.start_epoch or self.resumed_from is None:
                self.epoch_rng = self.rng.getstate()
            self.rng.setstate(self.epoch_rng)
            order = shuffled_batches(len(self.examples), s.batch_size, self.rng)  # the only use of rng
            fresh = epoch > self.start_epoch or self.skip == 0
            if fresh:
                self.skip = 0
            for cb in self.callbacks:
                cb.on_epoch_begin(self, fresh)
            for b, batch_idx in enumerate(order):
                if b < self.skip:
                    continue  # done before the checkpoint this run resumed from
                if self.step >= self.total:
                    break
                t_step = time.perf_counter()
                loss_sum, tok, pad = self._optimizer_step(batch_idx, epoch)
                self.step += 1
                self.last = StepResult(
                    loss=loss_sum,
                    tokens=int(tok),
                    padded_tokens=int(pad),
                    seconds=time.perf_counter() - t_step,
                    epoch=epoch,
                    batch_in_epoch=b,
                    epoch_end=b == len(order) - 1 or self.step >= self.total,
                )
                self.postfix = {"epoch": epoch + 1, "loss": f"{loss_sum:.4f}"}
                for cb in self.callbacks:
                    cb.on_step_end(self)
                if self.stop_requested:
                    break


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
    selection_labels=None,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
) -> TrainStats:
    """A :class:`TrainingRun` with the standard callbacks: the loss history, early stopping when
    ``early_stopping`` and ``selection`` rows are given (else the selection loss, and with ``selection_labels``
    the selection accuracy, watched at each epoch end), the
    progress bar, and checkpoints into ``checkpoint_dir`` (each epoch end and every ``checkpoint_every`` steps)
    with resuming; ``callbacks`` are added before the checkpoints (a tracking backend)."""
    settings = LoopSettings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        micro_batch_size=micro_batch_size,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        max_steps=max_steps,
        seed=seed,
    )
    chain: list[Callback] = [LossHistory()]
    if early_stopping is not None and selection:
        chain.append(EarlyStopper(early_stopping, selection))
    elif selection:  # a selection split without early stopping: watched at each epoch end
        chain.append(SelectionWatch(selection, selection_labels))
    chain.append(ProgressBar(progress))
    chain += list(callbacks or [])
    if (log := tracking.step_log()) is not None:  # the run's tracking backends (tunegate.tracking.training)
        chain.append(Tracking(log))
    if checkpoint_dir is not None:
        chain.append(Checkpointing(checkpoint_dir, run_key, checkpoint_every))
    run = TrainingRun(model, examples, loss_fn=loss_fn, pad_id=pad_id, settings=settings, callbacks=chain)
    return run.fit()


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
