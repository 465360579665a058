"""Linear probe settings: what the config's ``method:`` section holds for `linear_probe`.

Imports nothing heavy: the config loads it without torch."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from tunegate.methods.settings import MethodSettings


class LinearProbeSettings(MethodSettings):
    """Linear probe: a linear head on frozen backbone features of the prompt. Classification and regression."""

    answers: ClassVar[tuple[str, ...]] = ("labels", "number")  # a head predicts a label or a number
    name: Literal["linear_probe"] = "linear_probe"
    pooling: Literal["last", "mean"] = Field(
        default="last",
        description="Feature of a prompt: the hidden state of its last token, or the mean over its tokens.",
    )
    layer: int | None = Field(
        default=None,
        description=(
            "Which hidden-state layer: -1 = final (after the last norm), 0 = embeddings, negative counts back. "
            "null = two thirds of the depth: middle-to-late layers separate classes best (docs/BENCHMARKS.md)."
        ),
    )
    epochs: int = Field(
        default=300, ge=1, le=100000, description="Max passes over the features (early stopping ends sooner)."
    )
    lr: float = Field(
        default=1e-3, gt=0, lt=10, description="AdamW learning rate of the head (features are standardized)."
    )
    weight_decay: float = Field(default=1e-2, ge=0, description="AdamW weight decay of the head (L2 pull toward zero).")
    batch_size: int = Field(default=64, ge=1, description="Feature rows per head update.")
    patience: int = Field(default=20, ge=1, description="Stop after this many epochs without a better validation loss.")
    val_fraction: float = Field(default=0.15, gt=0, lt=0.9, description="Share of train held out for early stopping.")
    feature_batch_size: int = Field(default=16, ge=1, description="Prompts per forward pass when extracting features.")
