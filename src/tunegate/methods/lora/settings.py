"""LoRA settings: what the config's ``method:`` section holds for `lora`.

Imports nothing heavy: the config loads it without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.methods.settings import GradientSettings


class LoraSettings(GradientSettings):
    """LoRA: low-rank adapters inside the attention/MLP layers; the base stays frozen."""

    family = "lora"
    name: Literal["lora"] = "lora"
    r: int = Field(default=8, ge=1, le=1024, description="Adapter rank.")
    alpha: float = Field(default=16, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on the adapter input. 0 by default: on CPU each adapted module's dropout mask costs "
        "~40% of step time.",
    )
    target_modules: list[str] | str = Field(
        default="all-linear", description="Modules to adapt: 'all-linear' or a list such as [q_proj, v_proj]."
    )
