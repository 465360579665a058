"""The ``budget:`` section: caps checked against the plan's estimates before training."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tunegate.strict import Strict as _Strict


class BudgetConfig(_Strict):
    """Caps checked against the plan's estimates before training starts (null = no cap)."""

    max_train_minutes: float | None = Field(
        default=None, gt=0, description="Stop before training if the estimated training time exceeds this."
    )
    max_memory_gb: float | None = Field(
        default=None, gt=0, description="Stop before training if the estimated peak memory exceeds this."
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description="Stop before training if the estimated cost exceeds this (priced at costs.cpu_per_hour or "
        "costs.gpu_per_hour).",
    )

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, v: Any) -> Any:
        if isinstance(v, dict) and "price_per_hour" in v:
            raise ValueError(
                "budget.price_per_hour moved to costs.cpu_per_hour (and costs.gpu_per_hour for GPU training); "
                f"write `costs: {{cpu_per_hour: {v['price_per_hour']}}}`"
            )
        return v
