"""The ``costs:`` section: prices for the cost model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.strict import Strict as _Strict


class CostsConfig(_Strict):
    """Prices for the cost model. Times and token counts are measured in the run; only prices are assumed."""

    cpu_per_hour: float = Field(
        default=0.10,
        ge=0,
        description="$ per hour of a CPU training machine (default ~ a 2-core cloud VM; set your own).",
    )
    gpu_per_hour: float = Field(
        default=2.50, ge=0, description="$ per hour of a GPU training machine (used when training ran on CUDA)."
    )
    inference: Literal["tokens", "hourly"] = Field(
        default="tokens",
        description="How a request is priced: `tokens` (prompt and output tokens x the per-1K prices, like a hosted "
        "API) "
        "or `hourly` (measured latency x serving_per_hour, like a self-hosted server busy one request at a time).",
    )
    input_per_1k_tokens: float = Field(
        default=0.0001, ge=0, description="$ per 1,000 prompt tokens (inference: tokens)."
    )
    output_per_1k_tokens: float = Field(
        default=0.0002, ge=0, description="$ per 1,000 output tokens (inference: tokens)."
    )
    serving_per_hour: float = Field(
        default=0.10, ge=0, description="$ per hour of the serving machine (inference: hourly)."
    )
    requests_per_month: int = Field(
        default=100_000, ge=0, description="Expected requests per month, for the monthly cost and the break-even date."
    )

    def train_per_hour(self, device: str) -> float:
        return self.gpu_per_hour if device == "cuda" else self.cpu_per_hour
