"""The ``hardware:`` section: where models run and in which precision."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.strict import Strict as _Strict


class HardwareConfig(_Strict):
    """Where models run and in which precision (resolved per machine; the report says which path ran)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="'auto': CUDA when present, else Apple MPS, else the CPU."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Weights for scoring and the frozen base, and the training autocast dtype. 'auto': bf16 on GPUs "
        "that support it (float16 on older ones), bf16 on CPUs with AMX / AVX-512 BF16, float32 on other CPUs "
        "(there bf16 is ~5x slower).",
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: ~1/3 more compute for much less activation "
        "memory (long inputs, large models).",
    )
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Data-parallel training processes (one per GPU, or CPU processes over gloo); each takes its "
        "share of every batch, so the update equals one process's at the same batch_size. Methods trained by the "
        "shared loop (lora, qlora, prompt_tuning); the probe trains in one.",
    )
