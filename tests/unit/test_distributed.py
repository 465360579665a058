"""Data-parallel training: two CPU processes over gloo give the same adapter and loss curve as one process at the
same global batch size, and only rank 0 writes the artifact."""

import pytest
import torch
from safetensors.torch import load_file

from tunegate import distributed
from tunegate.methods import get_method
from tunegate.methods.lora import LoraSettings
from tunegate.records import Placement

from .test_methods import toy_set

# float32 sums in another order (two processes' partial gradients, then their sum): equal to ~1e-7 relative
TOLERANCE = 1e-5


def test_two_processes_match_one(tiny_model_dir, tiny_tokenizer, tmp_path, float32):
    data = toy_set(tiny_tokenizer, 16)
    cfg = LoraSettings(r=4, alpha=8, epochs=2, batch_size=8, lr=5e-3, seed=3)
    lora = get_method("lora")
    one = lora.train(base_path=str(tiny_model_dir), data=data, cfg=cfg, out_dir=tmp_path / "one", progress=False)
    two = distributed.train(
        lora,
        base_path=str(tiny_model_dir),
        data=data,
        cfg=cfg,
        out_dir=tmp_path / "two",
        placement=Placement(processes=2, reason="test"),
        progress=False,
    )
    assert two.train_stats.steps == one.train_stats.steps == 4
    assert two.train_stats.losses == pytest.approx(one.train_stats.losses, rel=TOLERANCE)
    assert two.train_stats.tokens == one.train_stats.tokens  # every row trained once per epoch, by one process
    a = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=TOLERANCE, atol=1e-6), k
    # rank 0 wrote the artifact once; no launch files are left beside it
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert not list(tmp_path.glob(".launch-*"))


def test_a_failing_process_is_a_clear_error(tiny_model_dir, tiny_tokenizer, tmp_path):
    with pytest.raises(distributed.DistributedTrainingError, match="training process .* of 2 failed"):
        distributed.train(
            get_method("lora"),
            base_path=str(tmp_path / "no-such-model"),
            data=toy_set(tiny_tokenizer, 4),
            cfg=LoraSettings(r=2, max_steps=1, batch_size=4),
            out_dir=tmp_path / "out",
            placement=Placement(processes=2, reason="test"),
            progress=False,
        )


STOP_SCRIPT = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.unit.test_methods import toy_set
from tunegate import distributed
from tunegate.cli import stop_on_sigterm
from tunegate.methods import get_method
from tunegate.methods.lora import LoraSettings
from tunegate.modeling import load_tokenizer
from tunegate.records import Placement

stop_on_sigterm()  # as the CLI does: SIGTERM unwinds as SystemExit(143)
tiny, out = sys.argv[2], Path(sys.argv[3])
out.mkdir(parents=True)
cfg = LoraSettings(r=2, epochs=100, batch_size=4, lr=1e-3, checkpoint_every=1)
distributed.train(get_method("lora"), base_path=tiny, data=toy_set(load_tokenizer(tiny), 16), cfg=cfg,
                  out_dir=out, placement=Placement(processes=2, reason="test"), progress=False)
"""


def test_a_stopped_run_leaves_no_training_process(tiny_model_dir, tmp_path):
    """SIGTERM to the process that launched two training processes: both are stopped with it."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "stop.py"
    script.write_text(STOP_SCRIPT)
    out = tmp_path / "run" / "artifact"
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(tiny_model_dir), str(out)])
    deadline = time.time() + 300
    while not list((out / "checkpoints").glob("step-*")):  # both ranks are training
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.2)
    ranks = subprocess.run(["pgrep", "-f", "tunegate.distributed"], capture_output=True, text=True).stdout.split()
    assert len(ranks) == 2
    os.kill(proc.pid, signal.SIGTERM)  # the launcher only, not its group
    assert proc.wait(timeout=60) != 0
    time.sleep(1)
    alive = [r for r in ranks if subprocess.run(["kill", "-0", r], capture_output=True).returncode == 0]
    assert alive == [], f"training processes outlived the stopped run: {alive}"
