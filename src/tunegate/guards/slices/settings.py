"""The ``guards.slices`` settings (light: the config imports them)."""

from __future__ import annotations

from pydantic import Field

from tunegate.guards.base import GuardSettings


class SlicesSettings(GuardSettings):
    """The gate metric on parts of the eval rows: per label, input-length quartile and declared column."""

    max_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest drop allowed on a slice, candidate vs the best rung: the lower end of its CI (corrected "
        "for the number of slices) must lie above -max_drop.",
    )
    min_rows: int = Field(
        default=30, ge=2, description="Slices with fewer eval rows are reported, not judged (too few to tell)."
    )
    labels: bool = Field(default=True, description="Slice classification rows by their label.")
    length: bool = Field(default=True, description="Slice by input-length quartile (characters).")
