"""The ``guards.bias`` settings (light: the config imports them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from tunegate.guards.base import GuardSettings


class BiasSettings(GuardSettings):
    """Bias the candidate may have inherited or gained: counterfactual flips and stereotype preference."""

    max_increase: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest increase allowed over the base model in each bias measure (share of flipped "
        "predictions; share of pairs preferring the stereotype): the upper end of the CI of (candidate - base).",
    )
    counterfactual: bool = Field(
        default=True, description="Measure counterfactual consistency on the eval inputs (classification)."
    )
    swaps: list[tuple[str, str]] = Field(
        default_factory=list,
        description="More term pairs to swap, besides the built-in pronouns, first names and nationalities, e.g. "
        "[[nurse, engineer]].",
    )
    max_rows: int = Field(default=200, ge=10, description="Eval rows with a swappable term scored at most.")
    stereotypes: bool = Field(default=True, description="Measure stereotype preference on the shipped CrowS-Pairs.")
    rows: int | None = Field(
        default=None,
        ge=20,
        description="Score the first this many shipped CrowS-Pairs pairs (a stratified sample already; null: all 301).",
    )
    pairs: list[Path] = Field(
        default_factory=list,
        description="User sentence-pair files (CSV with a header; first column the more, second the less "
        "stereotyping sentence), measured like CrowS-Pairs (relative paths from the config's folder).",
    )

    @field_validator("swaps")
    @classmethod
    def _words(cls, v: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for a, b in v:
            if not a.strip() or not b.strip() or a.lower() == b.lower():
                raise ValueError(f"swaps: [{a!r}, {b!r}] must be two different, non-empty terms")
        return v
