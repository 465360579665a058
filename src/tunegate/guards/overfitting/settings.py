"""The ``guards.overfitting`` settings (light: the config imports them)."""

from __future__ import annotations

from pydantic import Field

from tunegate.guards.base import GuardSettings


class OverfittingSettings(GuardSettings):
    """Signs of learning the train rows: the train/selection loss gap, and verbatim copies of train answers."""

    block: bool = Field(
        default=False,
        description="A failure stops promotion (default false: the memorisation share and the loss gap are "
        "reported and named in the decision).",
    )
    ngram: int = Field(default=8, ge=4, le=50, description="Words in a run that counts as a verbatim copy.")
    max_increase: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest increase allowed in the share of eval outputs copying a train answer, over the "
        "reference rung (the CI's upper end).",
    )
