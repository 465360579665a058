"""The ``guards.retention`` settings (light: the config imports them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from tunegate.guards.base import GuardSettings
from tunegate.guards.probes import PROBES

CHOICE_PROBES = [name for name, p in PROBES.items() if p.kind == "choice"]


class RetentionSettings(GuardSettings):
    """Forgetting: the candidate against the base model on general probes, other datasets and neutral text."""

    max_drop: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Largest drop allowed on each probe and dataset (accuracy or the dataset's gate metric): the "
        "lower end of the CI of (candidate - base) must lie above -max_drop.",
    )
    probes: list[str] = Field(
        default_factory=lambda: list(CHOICE_PROBES),
        description=f"Shipped general probes to score (of: {', '.join(CHOICE_PROBES)}); [] for none.",
    )
    rows: int | None = Field(
        default=200,
        ge=20,
        description="Score the first this many rows of each probe (a random sample already; null: all 300). 200 "
        "PIQA rows show a 0.05 drop at 80% power when about one row in seven changes its answer (the report gives "
        "the rows needed).",
    )
    datasets: list[Path] = Field(
        default_factory=list,
        description="Other tunegate config files whose eval rows the candidate must still answer as well as the "
        "base model (their prompt, labels and gate metric; relative paths from this config's folder).",
    )
    kl: bool = Field(
        default=True,
        description="Also measure the mean KL divergence of the candidate's next-token distribution from the "
        "base's on neutral text (label-free; nats).",
    )
    max_kl: float | None = Field(
        default=None, gt=0.0, description="Limit on that KL (the CI's upper end); default: reported, not judged."
    )
    kl_rows: int = Field(default=32, ge=8, le=300, description="Neutral passages the KL is measured on.")

    @field_validator("probes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if p not in CHOICE_PROBES]
        if bad:
            raise ValueError(f"unknown probe {bad[0]!r}; shipped general probes: {', '.join(CHOICE_PROBES)}")
        return v
