"""QLoRA settings: what the config's ``method:`` section holds for `qlora`.

Imports nothing heavy: the config loads it without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.methods.lora.settings import LoraSettings


class QLoraSettings(LoraSettings):
    """QLoRA: LoRA on a 4-bit (NF4) quantized base via bitsandbytes; the base takes ~1/3.4 of float32 memory."""

    name: Literal["qlora"] = "qlora"
    quant_type: Literal["nf4", "fp4"] = Field(default="nf4", description="4-bit data type of the base weights.")
    double_quant: bool = Field(
        default=True, description="Quantize the quantization constants too (saves ~0.4 bit/param)."
    )
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Dtype of the de-quantized matmuls. 'auto': the run's hardware dtype (bf16 on GPUs and on CPUs "
        "with bf16 hardware, float32 on other CPUs, where it is 5x faster).",
    )
