"""The device check script (run by a person with a GPU) works end to end; here on the CPU and a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_device_check_runs_every_check_and_writes_its_record(tmp_path, tiny_model_dir):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "device_check.py"), "--model", str(tiny_model_dir)]
    cmd += ["--steps", "4", "--batch-size", "4", "--rows", "16", "--lr", "0.02", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    (path,) = tmp_path.glob("device-*.json")
    record = json.loads(path.read_text())
    assert record["placement"]["device"] == "cpu" and record["gpu_peak_tflops"] is None
    for name in ("lora", "qlora"):
        check = record[name]
        assert check["steps"] == 4 and check["tokens_per_s"] > 0 and check["loss_fell"], check
        assert check["mfu_pct"] is None and check["peak_gpu_gb"] is None  # no GPU: no peak, no GPU memory
    assert record["scoring"]["examples_per_s"] > 0 and 0 <= record["scoring"]["zero_shot_accuracy"] <= 1
    assert record["generation"]["output_tokens_per_s"] > 0
    printed = done.stdout
    assert "device: cpu" in printed and "lora: {" in printed and "scoring: {" in printed and str(path) in printed
