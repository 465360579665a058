"""The training run's callbacks: the loss history, early stopping on the selection split, the progress bar, and
checkpoints with resuming (``training_run.TrainingRun`` calls them; a tracking backend is one more).

Each callback gets the run (``run``: a ``TrainingRun``; not imported here, it imports this module) at the loop's
points, reads what it needs from it (``run.step``, ``run.last``, ``run.named``, ...) and may ask it to stop
(``run.stop_requested``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunegate import checkpoints as checkpoints_mod
from tunegate.progress import bar as progress_bar
from tunegate.training import collate

Run = Any  # a training_run.TrainingRun


@dataclass
class StepResult:
    """What one optimizer step did (``TrainingRun.last``, read by the callbacks' ``on_step_end``)."""

    loss: float
    tokens: int
    padded_tokens: int
    seconds: float
    epoch: int
    batch_in_epoch: int  # the batch's index within its epoch
    epoch_end: bool  # the epoch's last step (or the run's last)


class Callback:
    """Hooks of a training run. ``state_dict`` is saved with every checkpoint and given back to
    ``load_state_dict`` when a run resumes; ``report`` goes into ``TrainStats.extra``."""

    def on_train_begin(self, run: Run) -> None:
        pass

    def on_epoch_begin(self, run: Run, fresh: bool) -> None:
        """``fresh``: the epoch starts at its first batch (not resumed in its middle)."""

    def on_step_end(self, run: Run) -> None:
        pass

    def on_train_end(self, run: Run) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, run: Run, history: dict[str, Any], state: dict[str, Any]) -> None:
        pass

    def report(self) -> dict[str, Any]:
        return {}


class LossHistory(Callback):
    """Every step's loss, time and tokens; each epoch's mean loss (checkpointed, so a resumed run's curve is whole)."""

    def __init__(self):
        self.losses: list[float] = []
        self.epoch_losses: list[float] = []
        self.ep_losses: list[float] = []  # the current epoch's step losses
        self.step_seconds: list[float] = []
        self.step_tokens: list[int] = []
        self.tokens = 0
        self.padded_tokens = 0

    def on_epoch_begin(self, run: Run, fresh: bool) -> None:
        if fresh:
            self.ep_losses = []

    def on_step_end(self, run: Run) -> None:
        last = run.last
        self.tokens += last.tokens
        self.padded_tokens += last.padded_tokens
        self.step_seconds.append(last.seconds)
        self.step_tokens.append(last.tokens)
        self.losses.append(last.loss)
        self.ep_losses.append(last.loss)
        if last.epoch_end and self.ep_losses:
            self.epoch_losses.append(sum(self.ep_losses) / len(self.ep_losses))

    def state_dict(self) -> dict[str, Any]:
        return {
            "losses": self.losses,
            "epoch_losses": self.epoch_losses,
            "ep_losses": self.ep_losses,
            "step_seconds": self.step_seconds,
            "step_tokens": self.step_tokens,
            "n_tok": self.tokens,
            "n_pad": self.padded_tokens,
        }

    def load_state_dict(self, run: Run, history: dict[str, Any], state: dict[str, Any]) -> None:
        self.losses, self.epoch_losses = list(history["losses"]), list(history["epoch_losses"])
        self.ep_losses = list(history["ep_losses"])
        self.step_seconds, self.step_tokens = list(history["step_seconds"]), list(history["step_tokens"])
        self.tokens, self.padded_tokens = history["n_tok"], history["n_pad"]


def selection_loss(run: Run, rows: list[tuple[list[int], list[int]]]) -> float:
    """Mean answer-token loss on the selection rows (dropout off, no gradients)."""
    run.model.eval()
    total_loss = n_answer = 0.0
    with torch.no_grad():
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        size = run.micro or run.settings.batch_size
        for m in range(0, len(order), size):
            part = collate([rows[i] for i in order[m : m + size]], run.pad_id)
            n = int((part["labels"][:, 1:] != -100).sum())
            with run.acc.autocast():
                total_loss += float(run.loss_fn({k: v.to(run.device) for k, v in part.items()})) * n
            n_answer += n
    run.model.train()
    return total_loss / max(n_answer, 1)


def selection_accuracy(run: Run, labels) -> float:
    """Classification: the share of selection rows whose label the model in training scores highest (the eval's
    label scorer, dropout off, no gradients)."""
    from tunegate.scoring import score_answers

    run.model.eval()
    with run.acc.autocast():
        scores, _ = score_answers(run.model, labels.prompts, labels.answers, pad_id=labels.pad_id)
    run.model.train()
    return float((scores.argmax(dim=1) == torch.tensor(labels.labels)).float().mean())


class SelectionWatch(Callback):
    """A selection split watched without early stopping: its answer-token loss at each epoch end beside the
    epoch's train loss (``extra["selection_watch"]``: the loss plot's selection curve and the overfitting guard's
    train/selection gap). Nothing is stopped or restored."""

    def __init__(self, selection: list[tuple[list[int], list[int]]], labels=None):
        self.selection = selection
        self.labels = labels  # methods.base.SelectionLabels: classification's rows scored by their labels
        # [step, selection loss, the epoch's mean train loss, selection accuracy or None]
        self.curve: list[list[float | None]] = []

    def on_step_end(self, run: Run) -> None:
        if not run.last.epoch_end:
            return
        history = run.callback(LossHistory)
        train = history.epoch_losses[-1] if history is not None and history.epoch_losses else run.last.loss
        accuracy = selection_accuracy(run, self.labels) if self.labels is not None else None
        self.curve.append([run.step, selection_loss(run, self.selection), train, accuracy])
        run.postfix["selection_loss"] = f"{self.curve[-1][1]:.4f}"

    def state_dict(self) -> dict[str, Any]:
        return {"watch": self.curve}

    def load_state_dict(self, run: Run, history: dict[str, Any], state: dict[str, Any]) -> None:
        self.curve = [list(x) for x in history.get("watch", [])]

    def report(self) -> dict[str, Any]:
        if not self.curve:
            return {}
        best = min(self.curve, key=lambda x: x[1])
        last = self.curve[-1]
        accuracy = [[x[0], x[3]] for x in self.curve if len(x) > 3 and x[3] is not None]
        rose = last[1] > best[1] * 1.02 and last[0] != best[0]
        words = (
            f"selection loss {self.curve[0][1]:.4f} -> {last[1]:.4f} over {len(self.curve)} epoch(s), lowest at step "
            f"{best[0]}"
            + (": it rose afterwards (over-fitting began; method.early_stopping keeps the best)" if rose else "")
        )
        return {
            "selection_watch": {
                "curve": [[x[0], x[1]] for x in self.curve],
                "train": [[x[0], x[2]] for x in self.curve],
                "accuracy": accuracy,
                "best_step": best[0],
                "rows": len(self.selection),
                "verdict": "overfit" if rose else "watched",
                "summary": words,
            }
        }


class EarlyStopper(Callback):
    """Early stopping on the selection split (``methods.settings.EarlyStopping``): the answer-token loss on the
    selection rows at each epoch end (and every ``every`` steps); the best weights are kept (and checkpointed),
    training stops after ``patience`` evaluations without improvement, and the best weights are loaded at the
    end. Its report (``extra["early_stopping"]``) has the curve and a verdict."""

    def __init__(self, settings, selection: list[tuple[list[int], list[int]]]):
        self.es = settings
        self.selection = selection
        self.dev: list[list[float]] = []  # [step, selection loss] per evaluation
        self.best: list[float] | None = None  # [step, loss] of the best evaluation
        self.bad = 0  # evaluations in a row without improvement
        self.stopped: int | None = None  # the step training stopped at
        self.best_params: dict[str, torch.Tensor] | None = None

    def on_step_end(self, run: Run) -> None:
        if not (run.last.epoch_end or (self.es.every and run.step % self.es.every == 0)):
            return
        loss = selection_loss(run, self.selection)
        self.dev.append([run.step, loss])
        if self.best is None or loss < self.best[1] - self.es.min_delta:
            self.best, self.bad = [run.step, loss], 0
            self.best_params = {n: p.detach().cpu().clone() for n, p in run.named}
        else:
            self.bad += 1
            if self.bad >= self.es.patience:
                self.stopped = run.step
                run.stop_requested = True
        run.postfix["selection_loss"] = f"{loss:.4f}"

    def on_train_end(self, run: Run) -> None:
        if self.best_params is not None:  # the weights of the best evaluation, not the last step's
            with torch.no_grad():
                for n, p in run.named:
                    p.copy_(self.best_params[n].to(p.device))
        self.total = run.total

    def state_dict(self) -> dict[str, Any]:
        return {"dev": self.dev, "best": self.best, "bad": self.bad, "stopped": self.stopped}

    def load_state_dict(self, run: Run, history: dict[str, Any], state: dict[str, Any]) -> None:
        self.dev, self.best = list(history.get("dev", [])), history.get("best")
        self.bad, self.stopped = history.get("bad", 0), history.get("stopped")
        self.best_params = state.get("best_params")
        if self.stopped is not None:  # the checkpoint was written when it stopped
            run.stop_requested = True

    def report(self) -> dict[str, Any]:
        return {"early_stopping": early_stopping_report(self, self.total, len(self.selection))}


class ProgressBar(Callback):
    """A progress bar over the optimizer steps (rank 0 only), with the epoch, the loss and the selection loss."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None

    def on_train_begin(self, run: Run) -> None:
        self.bar = progress_bar(run.total, "tune", "step", enabled=self.enabled and run.rank == 0, initial=run.step)

    def on_step_end(self, run: Run) -> None:
        self.bar.update(1)
        self.bar.set_postfix(**run.postfix)

    def on_train_end(self, run: Run) -> None:
        self.bar.close()


class Checkpointing(Callback):
    """The whole training state, atomically, at each epoch end and every ``every`` optimizer steps (and when a
    callback stops the run), into ``folder`` (:mod:`tunegate.checkpoints`); :meth:`restore` starts a run from the
    newest good checkpoint whose key matches, so a retry or ``--resume`` continues with the same batches, RNG and
    optimizer state and ends with the same weights and loss curve as an uninterrupted run."""

    def __init__(self, folder: Path, run_key: str, every: int | None = None):
        self.folder, self.run_key, self.every = folder, run_key, every
        self.key = ""

    def restore(self, run: Run) -> None:
        self.key = run.key(self.run_key)
        found = checkpoints_mod.latest(self.folder, self.key, map_location=run.device)
        if found is None:
            return
        folder, state = found
        with torch.no_grad():
            for n, p in run.named:
                p.copy_(state["params"][n])
        run.opt.load_state_dict(state["optimizer"])
        run.sched.load_state_dict(state["scheduler"])
        if run.acc.scaler is not None and state.get("scaler"):
            run.acc.scaler.load_state_dict(state["scaler"])
        run.step, run.start_epoch, run.skip = state["step"], state["epoch"], state["batch_in_epoch"]
        run.epoch_rng = _as_rng_state(state["epoch_rng"])
        _set_rng_states(state["rng"])
        history = state["history"]
        run.elapsed_before = history.get("elapsed", 0.0)
        for cb in run.callbacks:
            cb.load_state_dict(run, history, state)
        run.resumed_from = run.step
        if run.rank == 0:
            print(f"resuming training from checkpoint {folder.name}: {run.step} of {run.total} steps done")

    def on_step_end(self, run: Run) -> None:
        last = run.last
        due = last.epoch_end or (self.every and run.step % self.every == 0) or run.stop_requested
        if not due or run.rank != 0:
            return
        if last.epoch_end:  # the next epoch starts from the RNG as this epoch's shuffle left it
            self._save(run, last.epoch + 1, 0, run.rng.getstate())
        else:
            self._save(run, last.epoch, last.batch_in_epoch + 1, run.epoch_rng)

    def _save(self, run: Run, epoch: int, batch_in_epoch: int, epoch_rng_state: tuple) -> None:
        history: dict[str, Any] = {"elapsed": run.elapsed()}
        best_params = None
        for cb in run.callbacks:
            history.update(cb.state_dict())
            best_params = getattr(cb, "best_params", best_params)
        state = {
            "params": {n: p.detach().cpu() for n, p in run.named},
            "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(),
            "scaler": run.acc.scaler.state_dict() if run.acc.scaler is not None else None,
            "step": run.step,
            "epoch": epoch,
            "batch_in_epoch": batch_in_epoch,
            "epoch_rng": list(epoch_rng_state),  # the shuffling RNG at the start of ``epoch``
            "rng": _rng_states(),
            "history": history,
            "best_params": best_params,
        }
        checkpoints_mod.save(self.folder, run.step, self.key, state)

    def paths(self) -> list[str]:
        return [str(p) for _, p in checkpoints_mod.steps(self.folder)]


def early_stopping_report(es: EarlyStopper, total: int, n_rows: int) -> dict:
    """The selection-loss curve, the step kept, and whether training converged, over- or under-fit, in words."""
    curve = es.dev
    best_step, best_loss = es.best
    last_step, last_loss = curve[-1]
    if es.stopped is not None:
        verdict = "overfit"
        words = (
            f"the selection loss stopped improving after step {best_step} ({best_loss:.4f}); training stopped at "
            f"step {es.stopped} of {total} after {es.es.patience} evaluation(s) without improvement, and the weights "
            f"of step {best_step} were kept: more epochs would have over-fit"
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
        "stopped_at": es.stopped,
        "patience": es.es.patience,
        "every": es.es.every,
        "rows": n_rows,
        "verdict": verdict,
        "summary": words,
    }


def _rng_states() -> dict:
    states = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_rng_state(state) -> tuple:
    """``random.Random.getstate()`` back from its checkpointed (list) form."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class Tracking(Callback):
    """Each optimizer step's loss, tokens, time and epoch to the run's tracking backends (``log``: from
    ``tunegate.tracking.step_log``; the backends' own failures are warnings there)."""

    def __init__(self, log):
        self.log = log

    def on_step_end(self, run: Run) -> None:
        last = run.last
        values = {"loss": last.loss, "tokens": last.tokens, "seconds": round(last.seconds, 4), "epoch": last.epoch}
        self.log(run.step, values)
