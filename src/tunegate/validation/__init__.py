"""Data validation: every check runs, every failure is collected into one report.

The checks are a list (``checks.CHECKS``): files readable, required columns, the labels, exact duplicates within
train, conflicting labels, the length budget, the pandera contract (no null/blank text, labels in the declared
set, numbers for regression), train/eval overlap (leakage), rows left, examples per label and class balance,
token length vs ``method.max_length``, length shift between train and eval, and the rungs' own files. Errors stop
the run; warnings are reported. The report names the failing rows by their row number in the source file
(1-based, header excluded).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunegate.config import TunegateConfig
from tunegate.modeling import context_length, load_tokenizer
from tunegate.records import DatasetRef, ValidationResult
from tunegate.runs import write_run_config
from tunegate.validation.checks import CHECKS, Check, validate
from tunegate.validation.frames import group_references
from tunegate.validation.issues import Issue, ValidationOutcome
from tunegate.validation.markdown import render_markdown, write_report

__all__ = [
    "CHECKS",
    "Check",
    "Issue",
    "ValidationOutcome",
    "group_references",
    "render_markdown",
    "resolved_settings",
    "validate",
    "validate_run",
    "write_report",
]


LENGTH_STATS = ("max_length", "label_list_tokens", "label_list_share")  # what the plan shows of validation's


def validate_run(cfg: TunegateConfig, model_path: str, run_dir: Path) -> ValidationResult:
    """Every data check with the base model's tokenizer; the report goes to ``run_dir``, and on success the
    normalized train/eval frames as ``data/{train,eval}.parquet`` with what later stages need (hash, train mean)."""
    outcome = validate(cfg, load_tokenizer(model_path), context_length(model_path))
    md, js = write_report(outcome, run_dir)
    resolved = resolved_settings(cfg, outcome)
    if outcome.ok and resolved and (run_dir / "config.yaml").is_file():
        # the run's resolved config (what the registry keeps, what serving and re-scoring read) names them
        write_run_config(cfg.with_resolved(resolved).model_dump(mode="json"), run_dir)
    dataset = None
    if outcome.ok:
        data_dir = run_dir / "data"
        data_dir.mkdir(exist_ok=True)
        outcome.train_rows.sink_parquet(data_dir / "train.parquet")  # streamed from the source
        outcome.eval.write_parquet(data_dir / "eval.parquet")
        if outcome.dev is not None:
            outcome.dev.write_parquet(data_dir / "dev.parquet")
        train_mean = outcome.stats.get("train_mean")
        dataset = DatasetRef(
            train_path=str(data_dir / "train.parquet"),
            eval_path=str(data_dir / "eval.parquet"),
            data_hash=outcome.stats["data_hash"],
            n_train=outcome.stats["rows"]["train"],
            n_eval=outcome.eval.height,
            train_mean=train_mean,
            dev_path=str(data_dir / "dev.parquet") if outcome.dev is not None else None,
            n_dev=0 if outcome.dev is None else outcome.dev.height,
            lengths={k: outcome.stats[k] for k in LENGTH_STATS if k in outcome.stats},
        )
    return ValidationResult(
        ok=outcome.ok,
        n_errors=len(outcome.errors),
        n_warnings=len(outcome.warnings),
        report_md=str(md),
        report_json=str(js),
        summary=outcome.summary(),
        dataset=dataset,
        stats=outcome.stats,
        issues=[asdict(i) for i in outcome.issues],
        resolved=resolved,
    )


def resolved_settings(cfg: TunegateConfig, outcome: ValidationOutcome) -> dict[str, dict[str, Any]]:
    """The settings the files decided, per config section: ``data``: labels found in train, a conversation format
    'auto' recognised; ``method``: what a ``max_length: auto`` becomes (the longest row, within the context).
    :meth:`TunegateConfig.with_resolved` applies them."""
    data: dict[str, Any] = {}
    if outcome.stats.get("labels_inferred") and cfg.data.labels is None:
        data["labels"] = outcome.stats["labels_inferred"]
    if outcome.stats.get("conversation_format") and cfg.data.format == "auto":
        data["format"] = outcome.stats["conversation_format"]
    out: dict[str, dict[str, Any]] = {"data": data} if data else {}
    if "max_length" in outcome.stats:
        out["method"] = {"max_length": outcome.stats["max_length"]["auto"]}
    return out
