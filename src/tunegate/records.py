"""Small typed records passed between pipeline stages.

They carry paths, hashes and numbers, never live models or tensors, so a stage can
be retried, cached, or run on another worker: it loads what it needs from a path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from tunegate.plan_records import (  # noqa: F401 (re-exported: every stage record is found here)
    Advice,
    Hardware,
    MemoryEstimate,
    MethodEstimate,
    MicroBatchSuggestion,
    PlanResult,
)


class Placement(BaseModel):
    """The device and precision a run uses, and why (recorded in the decision and the report)."""

    device: str = "cpu"  # cpu | cuda | mps
    dtype: str = "float32"  # weights for inference and the frozen base; the autocast dtype in training
    gradient_checkpointing: bool = False
    processes: int = 1  # data-parallel training processes
    reason: str = "float32 on the CPU"

    @property
    def torch_dtype(self):
        import torch

        return getattr(torch, self.dtype)

    @property
    def mixed_precision(self) -> str:
        """accelerate's name for the training precision."""
        return {"bfloat16": "bf16", "float16": "fp16"}.get(self.dtype, "no")

    def describe(self) -> str:
        extra = ", gradient checkpointing" if self.gradient_checkpointing else ""
        extra += f", {self.processes} training processes" if self.processes > 1 else ""
        return f"{self.device}, {self.dtype}{extra} ({self.reason})"


class RunContext(BaseModel):
    """Where a run writes and which base model it uses."""

    run_id: str
    run_dir: str
    model_spec: str
    model_path: str
    model_id: str
    model_sha: str
    config_hash: str
    started_at: str = ""  # ISO 8601: when the run (and so its declared gate) began
    placement: Placement = Field(default_factory=Placement)  # device and precision (hardware: section, resolved)


class DatasetRef(BaseModel):
    """Validated, normalized data: canonical columns (text/label or input/target) in Parquet."""

    train_path: str
    eval_path: str
    data_hash: str
    n_train: int
    n_eval: int
    train_mean: float | None = None  # regression: the train target's mean (an answer without a number counts as it)
    dev_path: str | None = None  # the selection split (data.dev / dev_fraction), when configured
    n_dev: int = 0
    # validation's length record (the plan shows it): max_length {configured, chosen, auto, longest_row, why}, and
    # with a label list in the instruction, label_list_tokens (per request) and label_list_share (of an epoch)
    lengths: dict[str, Any] = Field(default_factory=dict)


class ValidationResult(BaseModel):
    """The validation stage's outcome: pass/fail, the report's paths and summary, the normalized data."""

    ok: bool
    n_errors: int
    n_warnings: int
    report_md: str
    report_json: str
    summary: str  # one paragraph naming every failed check
    dataset: DatasetRef | None = None
    stats: dict[str, Any] = Field(default_factory=dict)  # rows, label counts, token lengths, data hash (the report's)
    issues: list[dict[str, Any]] = Field(default_factory=list)  # every failed or warned check with its rows
    # settings validation resolved from the files, per section: data.labels (not set: found in train), data.format
    # ('auto' that turned out to be a conversation format), method.max_length ('auto': the longest row); the flows
    # apply them (TunegateConfig.with_resolved)
    resolved: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Prediction(BaseModel):
    """One eval row's prediction; per-label log-likelihoods for classification."""

    row: int
    prediction: str
    reference: str | list[str]
    scores: dict[str, float] | None = None
    retrieved: list[str] | None = None  # ids of the retrieved demonstrations/chunks in the prompt, best first


class Selection(BaseModel):
    """A model's scores on the selection split (``data.dev`` / ``dev_fraction``): the rows choices are made on, never
    the rows that judge."""

    metrics: dict[str, float]
    predictions: list[Prediction]
    n: int


class EvalResult(BaseModel):
    """Quality and cost of one way of answering (a baseline rung or a tuned model) on the eval rows."""

    name: str  # zero_shot, zero_shot_calibrated, few_shot, retrieved_few_shot_hybrid, rag_bm25, tuned:lora
    kind: Literal["baseline", "tuned", "production"]
    metrics: dict[str, float]
    predictions: list[Prediction]
    rung: str | None = None  # a baseline's rung kind (ladder.RUNGS key; a calibrated twin keeps its base's)
    n: int
    prompt_tokens_per_request: float
    output_tokens_per_request: float = 0.0  # generated tokens (generation, regression) or the label's answer tokens
    latency_ms_per_request: float  # (scoring + retrieval wall time) / n at the scoring batch size
    retrieval_ms_per_request: float = 0.0  # of which retrieval (query embedding + search)
    setup_seconds: float = 0.0  # one-off work before answering: index build (or load from cache), calibration
    index_build_seconds: float | None = None  # what building the retrieval index cost (when first built)
    index_mb: float | None = None  # size of the retrieval index on disk
    examples_per_s: float
    seconds: float
    batch_size: int
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. the few-shot rows used
    p95_latency_ms: float | None = None  # 95th percentile over rows of the wall time of the batch that answered it
    selection: Selection | None = None  # the same model on the selection split, when the data has one


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


class Comparison(BaseModel):
    """The candidate against one opponent (the best baseline rung or the production model) on the same rows."""

    opponent: str
    role: Literal["best_baseline", "production"]
    candidate_metric: float
    opponent_metric: float
    delta: float  # candidate - opponent
    ci_low: float  # paired bootstrap CI of the delta at 1 - alpha
    ci_high: float
    se: float  # bootstrap standard error of the delta
    n: int
    mcnemar_candidate_only: int | None = None  # accuracy: rows only the candidate gets right
    mcnemar_opponent_only: int | None = None
    mcnemar_p: float | None = None  # exact, two-sided
    mcnemar_required: bool = False
    mde: float  # minimum detectable difference at alpha and power on these n rows
    passed: bool
    why: str  # the rule's outcome in words


class CostLine(BaseModel):
    """What one way of answering costs: one-off (training, index build, calibration) and per request."""

    name: str
    kind: Literal["baseline", "tuned", "production"]
    one_off_usd: float
    one_off_seconds: float
    one_off_what: str  # "training 84 s", "index build 0.7 s + calibration 20 s", "-"
    prompt_tokens: float  # per request, measured with the real tokenizer on the real prompts
    output_tokens: float
    latency_ms: float
    per_request_usd: float
    monthly_usd: float  # per_request_usd x costs.requests_per_month


class BreakEven(BaseModel):
    """After how many requests the candidate's one-off cost is paid back by cheaper requests (or never)."""

    candidate: str
    against: str
    extra_one_off_usd: float  # candidate one-off - opponent one-off
    saving_per_request_usd: float  # opponent per-request - candidate per-request
    requests: float | None  # None: never
    months: float | None  # at costs.requests_per_month
    reason: str


class LadderRow(BaseModel):
    """One rung of the baseline ladder as the tables show it: its gate metric with CI and what it costs."""

    name: str
    metric: float
    ci_low: float
    ci_high: float
    best: bool
    prompt: str  # what goes into its prompt, in words
    prompt_tokens_per_request: float
    retrieval_ms_per_request: float = 0.0
    latency_ms_per_request: float
    setup_seconds: float = 0.0
    index_build_seconds: float | None = None
    index_cached: bool = False
    index_mb: float | None = None
    leakage_excluded: int = 0
    selection_metric: float | None = None  # on the selection split (where the best rung is chosen), when there is one
    search: dict[str, Any] | None = None  # a searched prompt's record (the optimized_prompt rung)


class ModelRow(BaseModel):
    """One rung or candidate in the run's model table: metric with CI, delta vs the best baseline, costs, verdict."""

    name: str
    kind: str  # baseline | tuned | production
    metric: float
    ci_low: float
    ci_high: float
    delta: float  # vs the best baseline
    delta_ci_low: float | None = None  # paired CI (candidates only)
    delta_ci_high: float | None = None
    prompt_tokens: float
    output_tokens: float
    latency_ms: float
    one_off_usd: float
    one_off_what: str
    per_request_usd: float
    monthly_usd: float
    decision: str  # best baseline | baseline | production | promote | reject
    selection_metric: float | None = None  # on the selection split, when there is one


class MethodRow(BaseModel):
    """One rung or method in `tunegate compare`'s trade-off table (a failed or skipped method has no metric)."""

    name: str
    kind: str  # baseline | method
    status: str
    error: str | None = None
    metric: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    delta: float | None = None
    delta_ci_low: float | None = None
    delta_ci_high: float | None = None
    trainable_params: int | None = None
    total_params: int | None = None
    peak_rss_mb: float | None = None
    base_weights_mb: float | None = None
    train_seconds: float | None = None
    est_train_seconds: float | None = None
    n_steps: int | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    artifact_mb: float | None = None
    latency_ms_per_request: float | None = None
    prompt_tokens_per_request: float | None = None
    decision: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    selection_metric: float | None = None  # on the selection split, when there is one
    seeds: dict[str, Any] | None = None  # gate.seeds > 1: per-seed metrics, and the mean delta's seeds x rows CI
    guards: dict[str, str] | None = None  # guard -> passed / failed / reported / not_measured
    retention: dict[str, float] | None = None  # the first retention probe: name, base, candidate, ci_low, ci_high


class GuardMeasure(BaseModel):
    """One thing a guard measures, base vs candidate on the same rows: the paired difference, its CI, the declared
    tolerance (checked as non-inferiority) and the rows that tolerance needs at the gate's power."""

    name: str  # "piqa", "label=negative", "stereotype preference", ...
    unit: str  # what the values are: "accuracy", "share of flipped predictions", "nats", ...
    higher_is_better: bool
    base: float  # the reference side's mean (the base model, or the best rung for slices)
    candidate: float
    delta: float  # candidate - base
    ci_low: float
    ci_high: float
    n: int
    tolerance: float | None = None  # None: measured and reported, never judged
    rows_needed: int | None = None  # rows for the tolerance at the declared power (None: no disagreement seen)
    underpowered: bool = False  # fewer rows than that: a CI that neither clears nor misses the tolerance is not judged
    passed: bool | None = None  # None: not judged (no tolerance, or too few rows to tell)
    note: str = ""


class GuardResult(BaseModel):
    """A guard's verdict (``guards.<name>``): passed, failed, reported (measured, nothing to judge) or not measured,
    with its measures and one sentence."""

    guard: str
    status: Literal["passed", "failed", "reported", "not_measured"]  # reported: measured, no tolerance applied
    block: bool  # a failed blocking guard stops promotion; a non-blocking one is reported
    sentence: str  # the result in one sentence, in the decision's reasons
    measures: list[GuardMeasure] = Field(default_factory=list)
    reference: str = "base model"  # what the candidate is compared with: the base model, or the best rung
    settings: dict[str, Any] = Field(default_factory=dict)  # as declared in the config
    warnings: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    plot: str | None = None  # relative to the run folder


class GuardReport(BaseModel):
    """Every guard of the run, and where their per-row values are kept (``guards.json``: the evidence ``tunegate
    audit verify`` recomputes the verdicts from)."""

    results: list[GuardResult] = Field(default_factory=list)
    rows_path: str | None = None
    seconds: float = 0.0


class Decision(BaseModel):
    """The gate's verdict with its evidence (written as decision.json)."""

    decision: Literal["promote", "reject"]
    summary: str  # "PROMOTED: ..." / "NOT PROMOTED: ..." (flow state message)
    headline: str = ""  # the decision in one plain sentence, at the top of the report
    reasons: list[str]
    gate: dict[str, Any]  # as declared in the config before the run (+ the metric and when it was declared)
    gate_metric: str
    baselines: dict[str, dict[str, float]]
    best_baseline: str
    tuned: dict[str, float]
    delta: float
    ci_low: float
    ci_high: float
    comparisons: list[Comparison] = Field(default_factory=list)  # vs the best baseline, and vs production if any
    production: str | None = None  # "name v3" when the candidate was compared with a production model
    underpowered: str | None = None  # why the eval set is too small for the declared gain, in words
    costs: dict[str, dict[str, Any]]
    cost_model: list[CostLine] = Field(default_factory=list)
    break_even: BreakEven | None = None
    prices: dict[str, Any] = Field(default_factory=dict)  # the costs section used
    provenance: dict[str, Any]
    models: list[ModelRow] = Field(default_factory=list)  # every rung and candidate: the report's and the audit's table
    selection: dict[str, Any] = Field(default_factory=dict)  # where the best rung was chosen: split, rows, scores
    objective: str = "quality"  # gate.objective: what a win means
    seeds: dict[str, Any] | None = None  # gate.seeds > 1: each seed's delta and CI, spread, share passing, choice
    cost_check: dict[str, Any] | None = None  # objective cost: cheaper per request, payback, latency, each verdict
    guards: list[GuardResult] = Field(default_factory=list)  # what tuning may break (guards:), each guard's verdict


class ProductionCheck(BaseModel):
    """The current production model scored on this run's eval rows, or why it was not."""

    version: str | None = None  # "name@v3"
    number: int | None = None  # 3: what deploy expects production to still be (compare-and-set)
    evaluation: EvalResult | None = None
    note: str


class DriftCheck(BaseModel):
    """The drift trigger's look at the served inputs (``tunegate serve``'s request log) against the production
    version's eval rows: past ``threshold`` or not (None: too few requests, or their text was not logged)."""

    drifted: bool | None
    score: float | None = None  # the token drift score (traffic.drift)
    threshold: float
    requests: int = 0
    message: str


class SourceWatch(BaseModel):
    """The data-change trigger's look at the raw source files: changed since it last looked, or not."""

    changed: bool
    fingerprint: str  # sha256 over the raw bytes of every source file
    message: str


class ChangeCheck(BaseModel):
    """Whether a retrain has anything new to learn from (data or config differ from the newest version's)."""

    changed: bool
    reason: str
    data_hash: str
    config_hash: str
    forced: bool = False
    last_version: int | None = None
    last_run_id: str | None = None
    last_data_hash: str | None = None


class Rescore(BaseModel):
    """A registered version loaded back from the registry and scored again on the eval rows it was judged on."""

    version: str  # "name@v3"
    metric: str
    expected: float | None = None  # what the run measured (the gate's number)
    value: float | None = None  # what the registry copy scores now
    tolerance: float
    reproduced: bool
    n: int = 0
    agreement: float | None = None  # share of rows with the same prediction as in the run
    seconds: float = 0.0
    note: str = ""


class DeployResult(BaseModel):
    """The deploy stage's outcome: the registered version and whether production moved to it."""

    registered_version: int | None
    version_dir: str | None
    production_moved: bool
    production_version: int | None
    message: str
    rescore: Rescore | None = None  # only when the gate said promote
    prompt_version: int | None = None  # not promoted and the best rung a searched prompt: registered as a version


class MethodOutcome(BaseModel):
    """One method's attempt in `tunegate compare`: its results, or why there are none."""

    method: str  # the entry's name in the table: the method's name, or its label (lora[layers=top:4])
    status: Literal["completed", "failed", "skipped", "not applicable"]
    error: str | None = None
    tuned: TuneResult | None = None
    evaluation: EvalResult | None = None  # with gate.seeds: the first seed's
    seeds: list[EvalResult] = Field(default_factory=list)  # gate.seeds > 1: every seed's evaluation
    registered: str | None = None  # the method's registered name, when ``method`` is a label
    guards: GuardReport | None = None  # what tuning may break, this entry's guards


class MethodComparison(BaseModel):
    """The measured trade-off table of `tunegate compare` (compare.json)."""

    gate_metric: str
    best_baseline: str
    rows: list[MethodRow]  # one per baseline rung and per method, in table order
    summary: str
    report_md: str
    chart_png: str | None = None
    winner: dict[str, Any] | None = None  # the best method, where it was chosen, its (corrected) delta CI


class ForecastResult(BaseModel):
    """`tunegate forecast`: the method's learning curve on nested fractions of train, fitted and extrapolated."""

    method: str
    metric: str
    points: list[dict[str, Any]]  # per fraction: rows, metric [CI], train seconds
    baseline: str  # the best baseline (chosen as the gate chooses it)
    baseline_metric: float
    target: float  # baseline metric + gate.min_gain
    fit: dict[str, Any]  # error = b * rows^-c: b, c and c's 90% interval
    predictions: list[dict[str, Any]]  # rows -> median and 90% interval of the metric
    rows_needed: dict[str, Any] | None = None  # rows to reach the target: median and 90% interval (None: not in reach)
    cost_needed: dict[str, Any] | None = None  # training seconds and USD at the median rows needed
    flat: bool = False
    verdict: str  # reached | reachable | flat | out_of_reach
    summary: str
    report_md: str = ""
    plot_png: str = ""


class AuditRecord(BaseModel):
    """One line of the registry's append-only audit log: every pipeline run, promoted or not, failed or not."""

    run_id: str
    time: str  # ISO 8601, when the record was appended
    model_name: str
    # completed / failed: a pipeline or retrain run; skipped: a retrain with nothing new to learn from;
    # promote / rollback: an alias moved by hand (`tunegate registry promote|rollback`) or by serve's rollback_if
    # (trigger `tunegate serve rollback_if`); cancelled: stopped by a
    # signal (SIGINT/SIGTERM) in failed_stage
    status: Literal["completed", "failed", "skipped", "cancelled", "promote", "rollback"]
    trigger: str | None = None  # manual, schedule (deployment name), data-change
    failed_stage: str | None = None
    error: str | None = None
    decision: Literal["promote", "reject"] | None = None
    headline: str | None = None
    method: str | None = None
    task: str | None = None
    data_hash: str | None = None
    config_hash: str | None = None
    code_version: str | None = None
    base_model: str | None = None
    gate: dict[str, Any] | None = None
    gate_metric: str | None = None
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)  # model -> {value, ci_low, ci_high}
    best_baseline: str | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    mcnemar_p: float | None = None
    mde: float | None = None
    cost: dict[str, Any] = Field(
        default_factory=dict
    )  # train_usd, per_request_usd (tuned, baseline), monthly, break_even
    deployed: dict[str, Any] = Field(default_factory=dict)  # registered_version, production_moved, production_version
    guards: dict[str, str] = Field(default_factory=dict)  # guard -> passed / failed / reported / not_measured
    run_dir: str | None = None
    evidence_dir: str | None = None  # audit/<run_id>, relative to the registry (predictions, decision.json, reports)
    evidence: dict[str, str] = Field(default_factory=dict)  # file -> sha256, checked by `tunegate audit verify`
    prev_hash: str = ""  # sha256 of the previous line: editing or deleting a line breaks the chain
    # sha256 of this record's own JSON (with record_hash empty); the newest line's hash is also kept outside the
    # log (audit.head), so editing the last line is caught too
    record_hash: str = ""


class GateInputs(BaseModel):
    """What the gate judges, as one record from the flow to the decision: every rung's result, the candidate's
    training and evaluation, and what the cost model and the report read besides (the plan's hardware, the
    production check, the validation summary, every seed of ``gate.seeds``: ``tuned`` is the one chosen)."""

    baselines: list[EvalResult]
    tuned: TuneResult
    tuned_eval: EvalResult
    plan: PlanResult | None = None
    production: ProductionCheck | None = None
    validation: ValidationResult | None = None
    seeds: list[tuple[TuneResult, EvalResult]] | None = None
    guards: GuardReport | None = None


class RunOutcome(BaseModel):
    """How a run ended, for its audit record: completed (with its decision and deployment), failed (the stage and
    the error), cancelled or skipped; what triggered it."""

    status: str  # completed | failed | cancelled | skipped
    validation: ValidationResult | None = None
    decision: Decision | None = None
    deployment: DeployResult | None = None
    tuned: TuneResult | None = None
    failed_stage: str | None = None
    error: str | None = None
    trigger: str | None = None
    headline: str | None = None
