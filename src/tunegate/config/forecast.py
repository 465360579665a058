"""The ``forecast:`` section: the learning curve of `tunegate forecast`."""

from __future__ import annotations

from pydantic import Field, field_validator

from tunegate.strict import Strict as _Strict


class ForecastConfig(_Strict):
    """`tunegate forecast`: would more labelled rows make tuning pay off? (a learning curve)"""

    fractions: list[float] = Field(
        default=[0.25, 0.5, 1.0],
        min_length=3,
        description="Nested shares of the train rows the method is trained on (each subset contains the smaller "
        "ones; stratified by label for classification); at least 3, the largest usually 1.0.",
    )
    resamples: int = Field(
        default=1000, ge=100, le=20000, description="Bootstrap resamples of the eval rows for the curve's uncertainty."
    )
    max_multiple: float = Field(
        default=20.0,
        gt=1.0,
        description="Extrapolate the curve at most to this multiple of the train rows (further is not a forecast).",
    )
    after_reject: bool = Field(
        default=False,
        description="`tunegate run`: when the gate does not promote, also forecast (the method trained on the "
        "smaller fractions; the run's own model is the full-data point) and add the curve to the report.",
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in v) or len(set(v)) != len(v):
            raise ValueError(f"forecast.fractions must be distinct shares in (0, 1], e.g. [0.25, 0.5, 1.0]; got {v}")
        return sorted(v)
