"""hardware: auto resolves to the fast path of the machine at hand; impossible requests are clear errors."""

import pytest
import torch

from tunegate import hardware
from tunegate.config import HardwareConfig
from tunegate.errors import ConfigError
from tunegate.records import Placement


@pytest.fixture
def cpu_flags(monkeypatch):
    def set_flags(flags):
        monkeypatch.setattr(hardware, "cpu_bf16_flags", lambda: flags)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    return set_flags


def test_auto_is_bf16_on_cpus_with_bf16_hardware_and_float32_elsewhere(cpu_flags, monkeypatch):
    cpu_flags(("amx_bf16", "avx512_bf16"))
    p = hardware.resolve(HardwareConfig())
    assert (p.device, p.dtype, p.mixed_precision) == ("cpu", "bfloat16", "bf16") and "amx_bf16" in p.reason
    cpu_flags(())
    p = hardware.resolve(HardwareConfig())
    assert (p.dtype, p.mixed_precision) == ("float32", "no") and "without bf16 hardware" in p.reason
    # no /proc/cpuinfo: a short matmul timing decides
    cpu_flags(None)
    monkeypatch.setattr(hardware, "cpu_bf16_is_faster", lambda: True)
    assert hardware.resolve(HardwareConfig()).dtype == "bfloat16"
    # an explicit dtype wins over detection
    assert hardware.resolve(HardwareConfig(dtype="float32")).dtype == "float32"


def test_this_machine_is_detected_as_documented():
    """ENVIRONMENT.md: `grep -o -w -E 'amx_bf16|avx512_bf16' /proc/cpuinfo` tells the two kinds apart."""
    import re
    from pathlib import Path

    found = set(re.findall(r"\b(amx_bf16|avx512_bf16)\b", Path("/proc/cpuinfo").read_text()))
    assert set(hardware.cpu_bf16_flags()) == found
    if not torch.cuda.is_available():
        assert hardware.resolve(HardwareConfig()).dtype == ("bfloat16" if found else "float32")


def test_impossible_requests_say_what_to_do(cpu_flags):
    cpu_flags(())
    with pytest.raises(ConfigError, match="no CUDA device"):
        hardware.resolve(HardwareConfig(device="cuda"))
    with pytest.raises(ConfigError, match="float16 is not supported on the CPU"):
        hardware.resolve(HardwareConfig(dtype="float16"))


def test_models_load_in_the_placement_in_force(tiny_model_dir):
    from tunegate.modeling import load_model

    with hardware.using(Placement(dtype="bfloat16", reason="test")):
        assert load_model(str(tiny_model_dir)).dtype == torch.bfloat16
        with hardware.using(Placement()):
            assert load_model(str(tiny_model_dir)).dtype == torch.float32
        assert hardware.current().dtype == "bfloat16"


def test_training_in_bf16_autocast_lowers_the_loss(tiny_model_dir, tiny_tokenizer, tmp_path):
    """The loop's mixed precision path (accelerate autocast, fp32 adapters on a bf16 base) trains, then the
    float32 path in the same process (accelerate's state is reset between precisions)."""
    from tunegate.methods import get_method
    from tunegate.methods.lora import LoraSettings

    from .test_methods import toy_set

    data = toy_set(tiny_tokenizer, 8)
    for dtype in ("bfloat16", "float32"):
        with hardware.using(Placement(dtype=dtype, reason="test")):
            art = get_method("lora").train(
                base_path=str(tiny_model_dir),
                data=data,
                cfg=LoraSettings(r=4, alpha=8, epochs=6, batch_size=8, lr=5e-3, seed=0),
                out_dir=tmp_path / dtype,
                progress=False,
            )
        losses = art.train_stats.losses
        assert losses[-1] < losses[0], (dtype, losses)
