"""Resumable training on the real model: SIGKILL a training process mid-epoch, start it again, same result.

One script trains LoRA on SmolLM2-135M (16 SST-2 rows, 4 steps per epoch, 2 epochs, a checkpoint every 2
steps) through the method's own entry point, so the checkpoint folder, its key and the resume are the ones
`tunegate run` uses. It is run three times in fresh processes: uninterrupted (the reference), killed with
SIGKILL as soon as the step-2 checkpoint exists (mid-epoch 1), and again on the killed run's folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from pathlib import Path
import polars as pl
import torch
from tunegate.methods.base import TrainingSet
from tunegate.methods.lora import LoRA, LoraSettings
from tunegate.modeling import load_tokenizer, resolve_model

out = Path(sys.argv[1])
model = resolve_model("smollm2-135m-instruct")
tok = load_tokenizer(model.path)
rows = pl.read_csv(sys.argv[2], separator="\t", quote_char=None).head(16)
prompts = [tok(f"Review: {t}\nSentiment:", add_special_tokens=False).input_ids[:48] for t in rows["sentence"]]
answers = [tok(" positive" if y else " negative", add_special_tokens=False).input_ids + [tok.eos_token_id]
           for y in rows["label"]]
data = TrainingSet(task="classification", prompt_ids=prompts, answer_ids=answers, pad_id=tok.pad_token_id,
                   fingerprint="sst2-16")
cfg = LoraSettings(r=4, epochs=2, batch_size=4, micro_batch_size=2, lr=5e-4, checkpoint_every=2, dropout=0.05)
art = LoRA().train(base_path=model.path, data=data, cfg=cfg, out_dir=out, progress=False)
st = art.train_stats
(out / "result.json").write_text(json.dumps({"losses": st.losses, "steps": st.steps, **st.extra}))
"""


def _run(out: Path, script: Path, *, kill_at: Path | None = None) -> subprocess.CompletedProcess | None:
    cmd = [sys.executable, str(script), str(out), str(ROOT.parent / "shared/data/sst2/train.tsv")]
    if kill_at is None:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out.parent)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=out.parent)
    deadline = time.time() + 300
    while not kill_at.is_dir():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return None


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_result(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    ref = _run(tmp_path / "ref", script)
    assert ref.returncode == 0, ref.stderr[-3000:]

    run = tmp_path / "run"
    _run(run, script, kill_at=run / "checkpoints" / "step-0000002")
    assert not (run / "result.json").exists() and not (run / "adapter").exists()  # killed before the end
    done = _run(run, script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming training from checkpoint step-0000002: 2 of 8 steps done" in done.stdout + done.stderr

    want = json.loads((tmp_path / "ref" / "result.json").read_text())
    got = json.loads((run / "result.json").read_text())
    assert got["resumed_from_step"] == 2 and got["steps"] == want["steps"] == 8
    assert got["losses"] == want["losses"]  # bit-identical loss curve (CPU, same threads)
    assert want["losses"][-1] < want["losses"][0]
    from safetensors.torch import load_file

    a = load_file(tmp_path / "ref" / "adapter" / "adapter_model.safetensors")
    b = load_file(run / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same final adapter
    assert not list((run / "checkpoints").glob(".tmp-*"))  # no half-written checkpoint left
