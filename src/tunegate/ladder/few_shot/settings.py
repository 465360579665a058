"""Settings of the `few_shot` rung (``baselines.few_shot``). Imports nothing heavy: the config loads it."""

from __future__ import annotations

from pydantic import Field

from tunegate.strict import Strict


class FewShotConfig(Strict):
    """The few-shot rung: k fixed random train rows as demonstrations."""

    enabled: bool = Field(default=True, description="Measure the few-shot baseline.")
    k: int = Field(default=4, ge=1, le=64, description="Number of demonstrations drawn from train.")
    seed: int = Field(default=0, description="Seed for drawing the demonstrations (fixed per run).")
