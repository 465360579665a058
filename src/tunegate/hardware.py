"""Where models run and in which precision: the ``hardware:`` section resolved for this machine.

``auto`` picks CUDA when present (else Apple MPS, else the CPU) and a 16-bit dtype
where the device computes it fast: bf16 on GPUs that support it (float16 on older
ones), bf16 on CPUs with AMX or AVX-512 BF16 (6.6x the float32 matmul rate on this
project's machines), float32 on CPUs without bf16 hardware (there bf16 is ~5x
*slower*). Where /proc/cpuinfo cannot say, a short matmul timing decides.

The resolved :class:`Placement` travels in the run's context; each stage runs under
:func:`using` it, and :func:`current` is what ``modeling.load_model``, the scorer and the
training loop read. Outside a run (``predict``, ``serve``, a re-score) it is resolved
for the machine at hand, so a version trained on one kind of machine is served on
another in that machine's best precision (a test checks both precisions agree within
the re-score tolerance).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path

from tunegate.records import Placement

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...] | None:
    """The CPU's bf16 feature flags, or None when /proc/cpuinfo cannot be read (not Linux)."""
    info = Path("/proc/cpuinfo")
    try:
        flags = set(info.read_text().split())
    except OSError:
        return None
    return tuple(f for f in CPU_BF16_FLAGS if f in flags)


def cpu_kind() -> str:
    """Which kind of CPU this is for speed figures: its bf16 hardware flags, or none (benchmarks print it)."""
    flags = cpu_bf16_flags()
    if flags is None:
        return f"{cpu_model()}, bf16 hardware unknown"
    return f"{cpu_model()}, " + (f"bf16 hardware ({', '.join(flags)})" if flags else "no bf16 hardware")


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity on Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_bf16_is_faster() -> bool:
    """Time one 512x512 matmul in float32 and in bf16 (a few ms): the fallback when flags are unknown."""
    import torch

    def timed(dtype) -> float:
        a = torch.randn(512, 512, dtype=dtype)
        a @ a  # warm-up
        t0 = time.perf_counter()
        for _ in range(5):
            a @ a
        return time.perf_counter() - t0

    return timed(torch.bfloat16) < timed(torch.float32)


# glibc malloc parameters (mallopt): tensors up to 32 MB come from the heap, and freed heap memory is kept
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
HEAP_REUSE = {_M_MMAP_THRESHOLD: 32 * 2**20, _M_TRIM_THRESHOLD: 2**31 - 1, _M_TOP_PAD: 64 * 2**20}
MALLOC_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Have glibc keep freed tensor memory for the next tensors instead of giving it back to the OS.

    glibc's defaults serve large allocations (activations, gradients) with ``mmap`` or trim the heap
    once a burst of them is freed, so each training micro-batch and scoring batch faults its memory in
    again, and on virtual machines a page fault is expensive. Kept, the heap is reused, and training runs
    faster at the same peak memory (docs/BENCHMARKS.md). The PyTorch CPU tuning guide's answer is
    jemalloc/tcmalloc; this is the same effect with glibc's own knobs, set once per process. Skipped
    where the user set them (``MALLOC_*_`` variables) or glibc is not the C library;
    ``training.release_memory`` still hands freed memory back between stages.
    """
    libc = glibc()
    if libc is None or any(v in os.environ for v in MALLOC_ENV):
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in HEAP_REUSE.items())


@functools.lru_cache(maxsize=1)
def glibc():
    """The C library when it is glibc (``mallopt``, ``malloc_trim``), else None."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both exist only in glibc
    except (OSError, AttributeError):
        return None
    return libc


def resolve(cfg) -> Placement:
    """The placement for ``cfg`` (a ``HardwareConfig``) on this machine.

    Raises:
        ConfigError: a device that is not there, or a dtype the device cannot run.
    """
    import torch

    from tunegate.errors import ConfigError

    device = cfg.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "hardware.device is 'cuda' but torch sees no CUDA device (a CPU build of torch, or no GPU). "
            "Use hardware.device: auto or cpu."
        )
    elif device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("hardware.device is 'mps' but this machine has no Apple MPS device; use auto or cpu.")

    dtype, reason = cfg.dtype, "set in hardware.dtype"
    if dtype == "auto":
        if device == "cuda":
            bf16 = torch.cuda.is_bf16_supported()
            dtype = "bfloat16" if bf16 else "float16"
            reason = f"{torch.cuda.get_device_name(0)}: {'bf16 supported' if bf16 else 'no bf16, float16'}"
        elif device == "mps":
            dtype, reason = "float16", "Apple MPS: float16"
        else:
            flags = cpu_bf16_flags()
            if flags is None:
                fast = cpu_bf16_is_faster()
                dtype = "bfloat16" if fast else "float32"
                reason = f"CPU flags unknown; a matmul timing found bf16 {'faster' if fast else 'slower'}"
            elif flags:
                dtype, reason = "bfloat16", f"CPU with {' + '.join(flags)}"
            else:
                dtype, reason = "float32", "CPU without bf16 hardware (bf16 would be ~5x slower)"
    elif dtype == "float16" and device == "cpu":
        raise ConfigError(
            "hardware.dtype float16 is not supported on the CPU (slow and unstable there); use auto, float32 or "
            "bfloat16."
        )
    _check_processes(cfg.processes, device)
    return Placement(
        device=device,
        dtype=dtype,
        gradient_checkpointing=cfg.gradient_checkpointing,
        processes=cfg.processes,
        reason=reason,
    )


def _check_processes(processes: int, device: str) -> None:
    """ConfigError when ``hardware.processes`` asks for more than the device has: a GPU each, a core each."""
    import torch

    from tunegate.errors import ConfigError

    if processes > 1 and device == "cuda" and processes > torch.cuda.device_count():
        raise ConfigError(
            f"hardware.processes is {processes} but {torch.cuda.device_count()} CUDA device(s) are visible: "
            "one process per GPU."
        )
    if processes > 1 and device == "cpu" and processes > usable_cores():
        raise ConfigError(
            f"hardware.processes is {processes} but this machine has {usable_cores()} CPU core(s): CPU processes "
            f"share the cores, one at least each; use at most {usable_cores()} (1 trains in one process)."
        )


_ACTIVE: list[Placement] = []


def current() -> Placement:
    """The placement in force: the run's (inside :func:`using`), else this machine's ``auto``."""
    if _ACTIVE:
        return _ACTIVE[-1]
    return _machine_default()


@functools.lru_cache(maxsize=1)
def _machine_default() -> Placement:
    from tunegate.config import HardwareConfig

    return resolve(HardwareConfig())


@contextlib.contextmanager
def using(placement: Placement):
    """Run the block with ``placement`` in force."""
    _ACTIVE.append(placement)
    try:
        yield placement
    finally:
        _ACTIVE.pop()


def accelerator(placement: Placement):
    """An ``accelerate.Accelerator`` for the training loop: device, mixed precision, (later) processes.

    accelerate keeps one state per process; a run in the same process that asks for another
    precision (a comparison, the test suite) resets it first.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, placement.mixed_precision):
        AcceleratorState._reset_state()
    return Accelerator(cpu=placement.device == "cpu", mixed_precision=placement.mixed_precision)
