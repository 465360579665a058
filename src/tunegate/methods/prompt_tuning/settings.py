"""Prompt tuning settings: what the config's ``method:`` section holds for `prompt_tuning`.

Imports nothing heavy: the config loads it without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.methods.settings import GradientSettings


class PromptTuningSettings(GradientSettings):
    """Prompt tuning (soft prompt): trainable virtual-token embeddings put before the input; the base stays frozen."""

    name: Literal["prompt_tuning"] = "prompt_tuning"
    num_virtual_tokens: int = Field(default=16, ge=1, le=512, description="Number of trainable virtual tokens.")
    init: Literal["text", "random"] = Field(
        default="text", description="Start the virtual tokens from the embeddings of init_text, or at random."
    )
    init_text: str | None = Field(
        default=None, description="Text whose token embeddings start the soft prompt. Default: the task instruction."
    )
    lr: float = Field(
        default=3e-2, gt=0, lt=10, description="Peak learning rate (soft prompts need a far higher one than LoRA)."
    )
