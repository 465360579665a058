"""LoRA settings: what the config's ``method:`` section holds for `lora`.

Imports nothing heavy: the config loads it without torch."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

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
    layers: str = Field(
        default="all",
        description="Which transformer blocks get adapters: 'all', 'top:K' (the K blocks nearest the output) or "
        "'bottom:K' (the K nearest the input). Fewer adapted blocks keep more of what the base model knew "
        "(guards.retention measures it) and may adapt less; `tunegate compare` can sweep it "
        "(compare: [{name: lora, layers: all}, {name: lora, layers: 'top:8'}]).",
    )

    @field_validator("layers")
    @classmethod
    def _layers(cls, v: str) -> str:
        v = str(v).strip().lower().replace(" ", "")
        if v != "all" and not re.fullmatch(r"(top|bottom):[1-9][0-9]*", v):
            raise ValueError(f"layers: {v!r} is not 'all', 'top:K' or 'bottom:K' (K a positive number of blocks)")
        return v

    def layer_indices(self, n_layers: int) -> list[int] | None:
        """The adapted blocks' indices for a model of ``n_layers`` blocks (None: all of them)."""
        if self.layers == "all":
            return None
        side, k = self.layers.split(":")
        k = min(int(k), n_layers)
        return list(range(n_layers - k, n_layers)) if side == "top" else list(range(k))
