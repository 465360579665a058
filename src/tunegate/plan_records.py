"""The plan's records (``tunegate plan`` and the pipeline's plan stage): the hardware found, each method's measured
estimate, the advisor's choice. Re-exported by :mod:`tunegate.records`, where every stage record is found."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Hardware(BaseModel):
    """What this machine offers for training (detected, not configured)."""

    device: Literal["cpu", "cuda"]
    cpu_cores: int
    ram_total_gb: float
    ram_available_gb: float
    gpu_name: str | None = None
    gpu_memory_gb: float | None = None
    torch_threads: int

    @property
    def memory_gb(self) -> float:
        """The memory a training run is bounded by: the GPU's when there is one, else available RAM."""
        return self.gpu_memory_gb if self.gpu_memory_gb is not None else self.ram_available_gb

    def describe(self) -> str:
        cpu = (
            f"{self.cpu_cores} CPU cores ({self.torch_threads} torch threads), "
            f"{self.ram_available_gb:.1f} of {self.ram_total_gb:.1f} GB RAM free"
        )
        return f"{self.gpu_name} ({self.gpu_memory_gb:.1f} GB) + {cpu}" if self.gpu_name else cpu


class MemoryEstimate(BaseModel):
    """Peak training memory estimated from the model's config, before anything is loaded (``footprint.py``)."""

    weights_gb: float
    trainable_gb: float  # trainable weights + gradients + optimizer state
    activations_gb: float  # saved activations + logits at the answer tokens
    runtime_gb: float = 0.0
    total_gb: float

    def describe(self) -> str:
        return (
            f"~{self.total_gb:.2f} GB: weights {self.weights_gb:.2f}, adapters+optimizer {self.trainable_gb:.2f}, "
            f"activations {self.activations_gb:.2f}" + (f", runtime {self.runtime_gb:.1f}" if self.runtime_gb else "")
        )


class MicroBatchSuggestion(BaseModel):
    """A larger micro-batch for the same update: the rows' shared first tokens are computed once per micro-batch."""

    micro_batch_size: int
    configured: int
    tokens_ratio: float  # tokens an epoch computes now / with the suggested micro-batch
    est_train_seconds: float  # the estimate scaled by that ratio
    est_peak_gb: float  # the measured peak plus the config estimate's difference


class MethodEstimate(BaseModel):
    """A method's measured calibration scaled to the full training set."""

    method: str
    applicable: bool
    reason: str | None = None  # why not applicable
    error: str | None = None  # the calibration run failed (the method would fail to train)
    trainable_params: int = 0
    total_params: int = 0
    full_train_tokens: int = 0
    calibration_rows: int = 0
    calibration_tokens_per_s: float = 0.0
    calibration_cached: bool = False  # measured by an earlier run on this machine (same rows, settings, code)
    est_train_seconds: float = 0.0
    est_peak_mb: float = 0.0
    base_footprint_mb: float | None = None
    est_cost_usd: float = 0.0
    est_memory: MemoryEstimate | None = None  # from the config alone, before anything is loaded
    calibrated: bool = True  # False: not run here (its memory estimate alone rules it out)
    over_budget: list[str] = Field(default_factory=list)
    suggestion: MicroBatchSuggestion | None = None  # the same update with fewer tokens computed
    auto_micro_batch: bool = False  # micro_batch_size 'auto': the suggestion (else the default) was applied
    config: dict[str, Any] = Field(default_factory=dict)


class Advice(BaseModel):
    """Why ``method: auto`` chose what it chose."""

    chosen: str
    rule: str
    inputs: dict[str, Any]
    alternatives: dict[str, str]


class PlanResult(BaseModel):
    """The plan: hardware, an estimate per candidate method, the chosen method and why, or why blocked."""

    hardware: Hardware
    estimates: list[MethodEstimate]
    chosen: str | None  # None when nothing fits the budget
    chosen_config: dict[str, Any] | None
    advice: Advice | None = None  # only for method: auto
    blocked: str | None = None  # why training must not start (over budget), in words
    base_params: int
    n_train: int
    price_per_hour: float
    lengths: dict[str, Any] = Field(default_factory=dict)  # validation's length record (DatasetRef.lengths)

    def estimate_for(self, method: str) -> MethodEstimate | None:
        return next((e for e in self.estimates if e.method == method), None)
