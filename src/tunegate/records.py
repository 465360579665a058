"""Small typed records passed between pipeline stages.

They carry paths, hashes and numbers, never live models or tensors, so a stage can
be retried, cached, or run on another worker: it loads what it needs from a path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class RunContext(BaseModel):
    """Where a run writes and which base model it uses."""

    run_id: str
    run_dir: str
    model_spec: str
    model_path: str
    model_id: str
    model_sha: str
    config_hash: str


class DatasetRef(BaseModel):
    """Validated, normalized data: canonical columns (text/label or input/target) in Parquet."""

    train_path: str
    eval_path: str
    data_hash: str
    n_train: int
    n_eval: int


class ValidationResult(BaseModel):
    ok: bool
    n_errors: int
    n_warnings: int
    report_md: str
    report_json: str
    summary: str  # one paragraph naming every failed check
    dataset: DatasetRef | None = None


class Prediction(BaseModel):
    """One eval row's prediction; per-label log-likelihoods for classification."""

    row: int
    prediction: str
    reference: str | list[str]
    scores: dict[str, float] | None = None


class EvalResult(BaseModel):
    """Quality and cost of one way of answering (a baseline rung or a tuned model) on the eval rows."""

    name: str  # zero_shot, few_shot, tuned:lora
    kind: Literal["baseline", "tuned"]
    metrics: dict[str, float]
    predictions: list[Prediction]
    n: int
    prompt_tokens_per_request: float
    latency_ms_per_request: float  # wall time / n at the scoring batch size
    examples_per_s: float
    seconds: float
    batch_size: int
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. the few-shot rows used


class TuneResult(BaseModel):
    """What training produced and what it cost."""

    method: str
    artifact_dir: str  # adapter in standard PEFT format + tunegate.json
    train_seconds: float
    peak_rss_mb: float
    base_footprint_mb: float | None = None  # memory of the frozen base weights
    trainable_params: int
    total_params: int
    n_steps: int
    n_train_tokens: int
    tokens_per_s: float
    loss_curve: list[float]
    epoch_losses: list[float]
    checkpoints: list[str]
    details: dict[str, Any] = Field(default_factory=dict)  # method-specific (e.g. the probe's validation accuracy)


class Decision(BaseModel):
    """The gate's verdict with its evidence (written as decision.json)."""

    decision: Literal["promote", "reject"]
    summary: str
    reasons: list[str]
    gate: dict[str, Any]
    gate_metric: str
    baselines: dict[str, dict[str, float]]
    best_baseline: str
    tuned: dict[str, float]
    delta: float
    ci_low: float
    ci_high: float
    costs: dict[str, dict[str, Any]]
    provenance: dict[str, Any]


class DeployResult(BaseModel):
    registered_version: int | None
    version_dir: str | None
    production_moved: bool
    production_version: int | None
    message: str
