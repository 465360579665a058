"""The answer-only loss, micro-batching and the loop, on the tiny model."""

import functools
import random
import shutil
from pathlib import Path

import pytest
import torch

from tunegate.checkpoints import CheckpointWarning, steps
from tunegate.methods.lora import LoRA, LoraSettings
from tunegate.modeling import load_model
from tunegate.training import answer_only_loss, collate, micro_batches, shuffled_batches
from tunegate.training_callbacks import Callback
from tunegate.training_run import TrainingDiverged, train_answer_loss


def examples(tok, n=12):
    rng = random.Random(0)
    out = []
    for i in range(n):
        prompt = tok(f"question {i} " + "x " * rng.randint(1, 10), add_special_tokens=False).input_ids
        answer = tok(" yes" if i % 2 else " no", add_special_tokens=False).input_ids + [tok.eos_token_id]
        out.append((prompt, answer))
    return out


def test_answer_only_loss_equals_full_logits_loss(tiny_model_dir, tiny_tokenizer):
    model = load_model(str(tiny_model_dir))
    batch = collate(examples(tiny_tokenizer, 4), tiny_tokenizer.pad_token_id)
    ours = answer_only_loss(model, batch)
    reference = model(**batch).loss  # HF: full logits everywhere, ignore_index -100
    assert torch.allclose(ours, reference, atol=1e-5)


def test_micro_batching_is_exact(tiny_model_dir, tiny_tokenizer, float32):
    ex = examples(tiny_tokenizer, 8)
    pad = tiny_tokenizer.pad_token_id
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=0))
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.fill_(0.01)
    params = [p for p in model.parameters() if p.requires_grad]
    full = collate(ex, pad)
    answer_only_loss(model.get_base_model(), full).backward()
    g_full = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    parts = [collate(ex[i : i + 2], pad) for i in range(0, 8, 2)]
    n_ans = sum(int((b["labels"][:, 1:] != -100).sum()) for b in parts)
    for b in parts:
        share = int((b["labels"][:, 1:] != -100).sum()) / n_ans
        (answer_only_loss(model.get_base_model(), b) * share).backward()
    for a, b in zip(g_full, [p.grad for p in params]):
        assert torch.allclose(a, b, atol=1e-6)


def test_batches_are_random_and_micro_batches_group_similar_lengths():
    lengths = [random.Random(i).randint(5, 100) for i in range(103)]
    batches = shuffled_batches(len(lengths), 8, random.Random(0))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(103)) and all(len(b) <= 8 for b in batches)
    # random batches, not length buckets: a batch mixes short and long rows
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]
    assert sum(spread) / len(spread) > 40
    for b in batches:
        micro = micro_batches(b, lengths, 4)
        assert sorted(i for m in micro for i in m) == sorted(b)  # the update is the batch's
        assert [lengths[i] for m in micro for i in m] == sorted(lengths[i] for i in b)


def train(model, ex, pad_id, tmp_path=None, loss_fn=None, **kw):
    settings = dict(epochs=3, batch_size=4, micro_batch_size=2, lr=2e-2, progress=False, checkpoint_every=2)
    return train_answer_loss(
        model,
        ex,
        loss_fn=loss_fn or functools.partial(answer_only_loss, model.get_base_model()),
        pad_id=pad_id,
        checkpoint_dir=tmp_path,
        run_key="test",
        **{**settings, **kw},
    )


def test_loss_falls_and_checkpoints_are_written(tiny_model_dir, tiny_tokenizer, tmp_path):
    ex = examples(tiny_tokenizer, 8)
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    st = train(model, ex, tiny_tokenizer.pad_token_id, tmp_path, epochs=15, checkpoint_every=None)
    assert st.steps == 30 and len(st.epoch_losses) == 15
    assert [Path(c).name for c in st.checkpoints] == ["step-0000028", "step-0000030"]  # epoch ends; newest 2 kept
    assert not list(tmp_path.glob(".tmp-*"))
    assert st.epoch_losses[-1] < 0.75 * st.epoch_losses[0]  # a random 32-wide model learns slowly
    assert st.tokens <= st.padded_tokens and st.peak_rss_mb > 0


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_crashed_run_resumes_to_the_same_weights_and_losses(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    """Crash at step 6 of 9 (mid-epoch: 3 steps per epoch, checkpoints every 2 steps and at epoch ends); a new
    process-like start (fresh model, same folder) resumes from step 4 and ends bit-identical to an uninterrupted
    run; a truncated newest checkpoint is skipped with a warning, never loaded."""
    ex, pad = examples(tiny_tokenizer, 12), tiny_tokenizer.pad_token_id
    settings = LoraSettings(r=4, seed=1, dropout=0.1)  # dropout: the RNG state must be restored too
    ref_model = LoRA().build(str(tiny_model_dir), settings)
    ref = train(ref_model, ex, pad, tmp_path / "ref")

    calls = []

    def crash_at_step_6(batch, model):
        calls.append(1)
        if len(calls) > 10:  # 2 micro-batches per step: the 11th is step 6's first
            raise RuntimeError("killed")
        return answer_only_loss(model.get_base_model(), batch)

    model = LoRA().build(str(tiny_model_dir), settings)
    with pytest.raises(RuntimeError, match="killed"):
        train(model, ex, pad, tmp_path / "run", loss_fn=functools.partial(crash_at_step_6, model=model))
    assert [p.name for _, p in steps(tmp_path / "run")] == ["step-0000003", "step-0000004"]
    # a half-written newer checkpoint (a kill during the write after the rename cannot happen; a truncated file can)
    bad = tmp_path / "run" / "step-0000005"
    shutil.copytree(tmp_path / "run" / "step-0000004", bad)
    state = bad / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    model = LoRA().build(str(tiny_model_dir), settings)
    with pytest.warns(CheckpointWarning, match="step-0000005.*truncated"):
        resumed = train(model, ex, pad, tmp_path / "run")
    assert resumed.extra["resumed_from_step"] == 4 and resumed.steps == ref.steps == 9
    assert resumed.losses == ref.losses and resumed.epoch_losses == ref.epoch_losses
    got, want = trainable(model), trainable(ref_model)
    assert all(torch.equal(got[n], want[n]) for n in want)
    # another run's checkpoint (other settings) is never resumed
    model = LoRA().build(str(tiny_model_dir), settings)
    with pytest.warns(CheckpointWarning, match="another training run"):
        other = train(model, ex, pad, tmp_path / "run", lr=1e-2)
    assert "resumed_from_step" not in other.extra


class StepLog(Callback):
    """A tracking backend's shape: every step's loss and the learning rate, its own state checkpointed."""

    def __init__(self):
        self.rows: list[tuple[int, float, float]] = []
        self.ended = False

    def on_step_end(self, run):
        self.rows.append((run.step, run.last.loss, run.sched.get_last_lr()[0]))

    def on_train_end(self, run):
        self.ended = True

    def state_dict(self):
        return {"step_log": list(self.rows)}

    def load_state_dict(self, run, history, state):
        self.rows = [tuple(r) for r in history["step_log"]]

    def report(self):
        return {"logged_steps": len(self.rows)}


def test_a_callback_sees_every_step_and_resumes_with_the_run(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    """Hooks for tracking: a callback added to the run gets each step (loss as the history records it, the
    learning rate), its state is saved in every checkpoint and given back on resume, and its report reaches
    TrainStats.extra; a resumed run's log equals an uninterrupted run's."""
    ex, pad = examples(tiny_tokenizer, 12), tiny_tokenizer.pad_token_id
    settings = LoraSettings(r=4, seed=1)
    log = StepLog()
    ref = train(LoRA().build(str(tiny_model_dir), settings), ex, pad, tmp_path / "ref", callbacks=[log])
    assert [r[0] for r in log.rows] == list(range(1, 10)) and log.ended
    assert [r[1] for r in log.rows] == ref.losses and ref.extra["logged_steps"] == 9
    lrs = [r[2] for r in log.rows]
    assert lrs[0] == pytest.approx(2e-2) and lrs == sorted(lrs, reverse=True) and lrs[-1] == 0.0  # decay to zero

    calls = []
    model = LoRA().build(str(tiny_model_dir), settings)

    def crash_at_step_6(batch):
        calls.append(1)
        if len(calls) > 10:
            raise RuntimeError("killed")
        return answer_only_loss(model.get_base_model(), batch)

    with pytest.raises(RuntimeError, match="killed"):
        train(model, ex, pad, tmp_path / "run", loss_fn=crash_at_step_6, callbacks=[StepLog()])
    again = StepLog()
    resumed = train(LoRA().build(str(tiny_model_dir), settings), ex, pad, tmp_path / "run", callbacks=[again])
    assert resumed.extra["resumed_from_step"] == 4 and again.rows == log.rows


def test_a_nan_loss_stops_training_naming_the_step(tiny_model_dir, tiny_tokenizer, tmp_path):
    ex = examples(tiny_tokenizer, 8)
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=0))
    calls = []

    def nan_at_step_2(batch):
        calls.append(1)
        loss = answer_only_loss(model.get_base_model(), batch)
        return loss * float("nan") if len(calls) == 3 else loss

    with pytest.raises(TrainingDiverged, match=r"loss is nan at optimizer step 2 of 6 \(epoch 1; the batch of train"):
        train(model, ex, tiny_tokenizer.pad_token_id, None, loss_fn=nan_at_step_2)


def test_out_of_memory_retries_the_step_with_half_the_micro_batch(tiny_model_dir, tiny_tokenizer, float32):
    """A micro-batch of 4 rows runs out of memory: the step is redone in micro-batches of 2, the same update."""
    ex, pad = examples(tiny_tokenizer, 8), tiny_tokenizer.pad_token_id
    ref_model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=0))
    ref = train(ref_model, ex, pad, micro_batch_size=2)
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=0))

    def small_memory(batch):
        if batch["input_ids"].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated: micro-batch over 2 rows)")
        return answer_only_loss(model.get_base_model(), batch)

    st = train(model, ex, pad, loss_fn=small_memory, micro_batch_size=4)
    assert st.extra["oom_retries"] == [{"step": 1, "micro_batch_size": 4, "retried_with": 2}]
    assert st.losses == pytest.approx(ref.losses, rel=1e-6)
    got, want = trainable(model), trainable(ref_model)
    assert all(torch.allclose(got[n], want[n], atol=1e-7) for n in want)


def test_seed_makes_training_deterministic(tiny_model_dir, tiny_tokenizer):
    ex = examples(tiny_tokenizer, 8)
    runs = []
    for _ in range(2):
        model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=3))
        st = train_answer_loss(
            model,
            ex,
            loss_fn=functools.partial(answer_only_loss, model.get_base_model()),
            pad_id=tiny_tokenizer.pad_token_id,
            epochs=1,
            batch_size=4,
            lr=1e-2,
            seed=3,
            progress=False,
        )
        runs.append(st.losses)
    assert runs[0] == runs[1]


def test_no_trainable_parameters_is_an_error(tiny_model_dir, tiny_tokenizer):
    model = load_model(str(tiny_model_dir))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable"):
        train_answer_loss(
            model,
            examples(tiny_tokenizer, 2),
            loss_fn=lambda b: None,
            pad_id=0,
            epochs=1,
            batch_size=2,
            lr=1e-3,
            progress=False,
        )


def flipped(ex, tok):
    """The same prompts with the other answer: what memorising the training answers makes worse."""
    yes, no = (tok(w, add_special_tokens=False).input_ids + [tok.eos_token_id] for w in (" yes", " no"))
    return [(p, no if a == yes else yes) for p, a in ex]


def test_early_stopping_keeps_the_best_weights_and_says_why(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    """On selection rows that disagree with train (their answers flipped), the selection loss rises as training
    memorises: the loop stops after `patience` evaluations without improvement and ends with the weights of the
    best evaluation ("overfit"). On selection rows like train the loss keeps falling ("underfit": more epochs
    may help). A run resumed from a checkpoint continues the same curve and ends with the same weights."""
    from tunegate.methods.settings import EarlyStopping

    ex, pad = examples(tiny_tokenizer, 8), tiny_tokenizer.pad_token_id
    es = EarlyStopping(patience=2, every=1)
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    loss = functools.partial(answer_only_loss, model.get_base_model())
    st = train(model, ex, pad, tmp_path / "over", epochs=15, early_stopping=es, selection=flipped(ex, tiny_tokenizer))
    r = st.extra["early_stopping"]
    assert r["verdict"] == "overfit" and r["stopped_at"] is not None and st.steps == r["stopped_at"] < 30
    losses = [v for _, v in r["curve"]]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert r["best_step"] == r["curve"][best][0] and len(losses) - 1 - best == 2  # patience 2 after the best
    assert "the weights of step" in r["summary"] and "stopped at step" in r["summary"]
    with torch.no_grad():  # the model ends with the best evaluation's weights, not the last step's
        sel = collate(flipped(ex, tiny_tokenizer), pad)
        model.eval()
        assert float(loss(sel)) == pytest.approx(r["best_loss"], rel=1e-4)
    # started again on the same folder: the stop is in the checkpoint, nothing more is trained
    again_model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    again = train(
        again_model, ex, pad, tmp_path / "over", epochs=15, early_stopping=es, selection=flipped(ex, tiny_tokenizer)
    )
    assert again.extra["early_stopping"]["curve"] == r["curve"] and again.steps == st.steps
    got, want = trainable(again_model), trainable(model)
    assert all(torch.equal(got[n], want[n]) for n in want)
    # selection rows like the training rows: still improving at the end
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    st = train(model, ex, pad, None, epochs=3, early_stopping=EarlyStopping(patience=2), selection=ex)
    r = st.extra["early_stopping"]
    assert r["verdict"] == "underfit" and r["stopped_at"] is None and [s for s, _ in r["curve"]] == [2, 4, 6]
    assert "had not converged" in r["summary"]


def test_early_stopping_needs_a_selection_split(tmp_path, tiny_model_dir, toy_data):
    from tests.conftest import make_config
    from tunegate.config import load_config

    with pytest.raises(Exception, match="early_stopping, which evaluates on a selection split: set data.dev"):
        load_config(make_config(tmp_path, tiny_model_dir, toy_data, method={"early_stopping": {"patience": 2}}))
    cfg = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            method={"early_stopping": {"patience": 2}},
            data={"dev_fraction": 0.2},
        )
    )
    assert cfg.method.early_stopping.patience == 2 and cfg.method.loop_settings()["early_stopping"].patience == 2


def test_early_stopping_survives_a_crash(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    """Killed mid-training (after the best weights were kept, before the stop): the resumed run has the same
    selection curve, stops at the same step and ends with the same weights as an uninterrupted run."""
    from tunegate.methods.settings import EarlyStopping

    ex, pad = examples(tiny_tokenizer, 8), tiny_tokenizer.pad_token_id
    kw = dict(epochs=15, early_stopping=EarlyStopping(patience=3, every=1), selection=flipped(ex, tiny_tokenizer))
    ref_model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    ref = train(ref_model, ex, pad, tmp_path / "ref", checkpoint_every=1, **kw)
    stop = ref.extra["early_stopping"]["stopped_at"]
    assert stop is not None and stop >= 4
    calls = []

    def crash(batch, model):
        calls.append(1)
        if len(calls) > 6 * (stop - 1):  # a step: 2 micro-batches + 4 of the selection rows; dies in the last
            raise RuntimeError("killed")
        return answer_only_loss(model.get_base_model(), batch)

    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    with pytest.raises(RuntimeError, match="killed"):
        train(model, ex, pad, tmp_path / "run", checkpoint_every=1, loss_fn=functools.partial(crash, model=model), **kw)
    model = LoRA().build(str(tiny_model_dir), LoraSettings(r=8, seed=0))
    resumed = train(model, ex, pad, tmp_path / "run", checkpoint_every=1, **kw)
    assert resumed.extra["resumed_from_step"] == stop - 1
    assert resumed.extra["early_stopping"] == ref.extra["early_stopping"] and resumed.losses == ref.losses
    got, want = trainable(model), trainable(ref_model)
    assert all(torch.equal(got[n], want[n]) for n in want)


@pytest.mark.parametrize("method", ["lora", "prompt_tuning"])
def test_gradient_checkpointing_runs_rows_whole_with_the_same_loss_and_gradients(
    method, tiny_model_dir, tiny_tokenizer, float32, monkeypatch
):
    """Gradient checkpointing keeps no KV cache, so rows sharing an instruction run whole there (the soft prompt
    prepended to each row); loss and gradients equal the shared-prefix path's."""
    from tunegate import training
    from tunegate.methods import get_method
    from tunegate.methods.prompt_tuning import PromptTuningSettings, SoftPromptLM

    shared = tiny_tokenizer("Route this message to one of: billing, refund, shipping, account, technical.").input_ids
    assert len(shared) >= training.SHARED_PREFIX_MIN_TOKENS
    rows = [(shared + prompt, answer) for prompt, answer in examples(tiny_tokenizer, 4)]
    batch = collate(rows, tiny_tokenizer.pad_token_id)
    if method == "lora":
        model = LoRA().build(str(tiny_model_dir), LoraSettings(r=2, seed=0))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.fill_(0.01)

        def loss():
            return answer_only_loss(model.get_base_model(), batch)
    else:
        model = get_method("prompt_tuning").build(str(tiny_model_dir), PromptTuningSettings(num_virtual_tokens=3), "")
        soft = SoftPromptLM(model)

        def loss():
            return answer_only_loss(soft.lm, batch, prefix_embeds=soft._prompt(1)[0])

    calls = []
    real = training.hidden_after_shared_prefix
    monkeypatch.setattr(training, "hidden_after_shared_prefix", lambda *a, **k: calls.append(1) or real(*a, **k))
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    results = []
    for checkpointing in (False, True):
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        for p in params:
            p.grad = None
        value = loss()
        value.backward()
        results.append((value.item(), [p.grad.clone() for p in params]))
    assert calls == [1]  # the shared path without checkpointing only
    (plain, plain_grads), (ckpt, ckpt_grads) = results
    assert ckpt == pytest.approx(plain, rel=1e-5)
    for a, b in zip(plain_grads, ckpt_grads):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)
