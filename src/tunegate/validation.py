"""Data validation: every check runs, every failure is collected into one report.

Checks: file readable, required columns (pandera schema), no null/blank text, labels
in the declared set, exact duplicates within train, train/eval overlap (leakage),
examples per label, token length vs ``method.max_length``, class balance. Errors stop
the run; warnings are reported. The report names the failing rows by their row
number in the source file (1-based, header excluded).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl

from tunegate.config import TunegateConfig
from tunegate.data import (
    ROW,
    DataReadError,
    canonical_columns,
    conversation_format,
    frame_hash,
    infer_labels,
    read_conversations,
    read_table,
    sample,
    source_columns,
    split,
    to_canonical,
)
from tunegate.documents import DocumentError, document_files, load_chunks
from tunegate.modeling import load_tokenizer
from tunegate.progress import bar as progress_bar
from tunegate.prompts import PromptBuilder
from tunegate.records import DatasetRef, ValidationResult
from tunegate.runs import write_run_config
from tunegate.schemas import schema_for

MAX_ROWS_IN_SUMMARY = 10


@dataclass
class Issue:
    """One failed or warned data check: its name, level, message and the rows it names."""

    check: str
    severity: str  # "error" | "warning"
    message: str
    split: str = ""  # train | eval | config
    rows: list[int] = field(default_factory=list)


@dataclass
class ValidationOutcome:
    """What validation found, plus the cleaned frames when it passed."""

    issues: list[Issue]
    stats: dict[str, Any]
    train: pl.DataFrame | None = None
    eval: pl.DataFrame | None = None
    dev: pl.DataFrame | None = None  # the selection split, when configured

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        """One paragraph naming each failed check and its rows."""
        if self.ok:
            return f"Data validation passed ({len(self.warnings)} warning(s))."
        parts = []
        for i in self.errors:
            rows = ""
            if i.rows:
                shown = ", ".join(str(r) for r in i.rows[:MAX_ROWS_IN_SUMMARY])
                more = f" and {len(i.rows) - MAX_ROWS_IN_SUMMARY} more" if len(i.rows) > MAX_ROWS_IN_SUMMARY else ""
                rows = f" (rows {shown}{more})"
            parts.append(f"[{i.check}] {i.message}{rows}")
        return f"Data validation failed with {len(self.errors)} error(s): " + "; ".join(parts) + "."


def _pandera_issues(
    df: pl.DataFrame, schema: pa.DataFrameSchema, split_name: str, col_names: dict[str, str]
) -> list[Issue]:
    try:
        schema.validate(df, lazy=True)
        return []
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
    issues: list[Issue] = []
    rows_of = df.get_column(ROW).to_list()
    for (column, check), group in fc.group_by(["column", "check"], maintain_order=True):
        idx = [i for i in group.get_column("index").to_list() if i is not None]
        rows = sorted({rows_of[i] for i in idx})
        user_col = col_names.get(column, column)
        if check == "not_nullable":
            name, msg = "null_values", f"{split_name} column '{user_col}' has missing values"
        elif check.startswith("isin"):
            bad = sorted({str(v) for v in group.get_column("failure_case").to_list()})
            name, msg = (
                "unknown_labels",
                f"{split_name} labels not in data.labels: {', '.join(bad)}; fix the rows or add the labels",
            )
        elif "empty or whitespace" in check:
            name, msg = "empty_text", f"{split_name} column '{user_col}' has empty or whitespace-only values"
        else:
            name, msg = check, f"{split_name} column '{user_col}' fails {check}"
        issues.append(Issue(check=name, severity="error", split=split_name, message=msg, rows=rows))
    return issues


TOKENIZE_BATCH = 10_000  # texts tokenized at once: only their lengths are kept
TOKENIZE_PROGRESS_MIN = 50_000  # rows from which tokenizing gets a progress bar


def token_lengths(tokenizer, texts: list[str], desc: str | None = None) -> list[int]:
    """Token count of each text, tokenized in batches (memory bounded by a batch, not by the file)."""
    out: list[int] = []
    with progress_bar(len(texts), desc if len(texts) >= TOKENIZE_PROGRESS_MIN else None, "row") as bar:
        for start in range(0, len(texts), TOKENIZE_BATCH):
            part = texts[start : start + TOKENIZE_BATCH]
            out += [len(x) for x in tokenizer(part, add_special_tokens=False).input_ids]
            bar.update(len(part))
    return out


def _conversation_issues(problems, split_name: str, fmt: str) -> list[Issue]:
    """One error per failed conversation check, naming its lines (OpenAI data-preparation style)."""
    by_check: dict[str, list] = {}
    for p in problems:
        by_check.setdefault(p.check, []).append(p)
    out = []
    for check, ps in by_check.items():
        example = f"line {ps[0].line}: {ps[0].message}"
        more = f" ({len(ps)} lines)" if len(ps) > 1 else ""
        out.append(
            Issue(
                check=check,
                severity="error",
                split=split_name,
                message=f"{split_name} conversations ({fmt}) fail '{check}'{more}, e.g. {example}; fix or remove "
                "those lines",
                rows=[p.line for p in ps],
            )
        )
    return out


def _answer_clashes(answers: dict[str, str]) -> str:
    """ "'a_b' and 'a b'" when two labels get the same answer words, else ''."""
    seen: dict[str, str] = {}
    for lab, ans in answers.items():
        key = ans
        if key in seen:
            return f"'{seen[key]}' and '{lab}'"
        seen[key] = lab
    return ""


def _valid_rows(df: pl.DataFrame, cols: tuple[str, ...]) -> pl.DataFrame:
    cond = pl.lit(True)
    for c in cols:
        cond = cond & pl.col(c).is_not_null() & (pl.col(c).str.strip_chars().str.len_chars() > 0)
    return df.filter(cond)


def _policy_issue(policy: str, check: str, message: str, split_name: str, rows: list[int], fix: str) -> Issue:
    severity = "error" if policy == "error" else "warning"
    suffix = f"; {fix}" if policy == "error" else (" (dropped)" if policy == "drop" else "")
    return Issue(check=check, severity=severity, split=split_name, message=message + suffix, rows=rows)


def validate(cfg: TunegateConfig, tokenizer) -> ValidationOutcome:
    """Run every check on the configured data; never raises for bad data."""
    issues: list[Issue] = []
    stats: dict[str, Any] = {}
    d = cfg.data
    text_col, label_col = canonical_columns(cfg.task)
    user_cols = dict(zip(canonical_columns(cfg.task), source_columns(cfg.task, d)))

    frames: dict[str, pl.DataFrame] = {}
    for split_name, path in (("train", d.train), ("eval", d.eval), ("dev", d.dev)):
        if path is None:
            continue
        try:
            source = cfg.resolve(path)
            conv = conversation_format(source, d.format) if cfg.task == "generation" else None
            if conv is not None:  # conversations: the canonical columns come from the turns
                frames[split_name], problems = read_conversations(source, conv, d.encoding)
                issues.extend(_conversation_issues(problems, split_name, conv))
                stats.setdefault("conversation_format", conv)
                if frames[split_name].height == 0 and not problems:
                    issues.append(Issue("readable", "error", f"{source}: no conversations found", split_name))
            else:
                table = read_table(source, d.format, d.columns, d.encoding)
                frames[split_name] = to_canonical(table, cfg.task, d)
        except DataReadError as exc:
            issues.append(Issue(check="readable", severity="error", split=split_name, message=str(exc)))
    if issues:
        return ValidationOutcome(issues=issues, stats=stats)

    for split_name, df in frames.items():
        for canon in (text_col, label_col):
            if canon not in df.columns:
                user = user_cols[canon]
                issues.append(
                    Issue(
                        check="required_columns",
                        severity="error",
                        split=split_name,
                        message=(
                            f"{split_name} data has no column '{user}' (columns found: "
                            f"{', '.join(c for c in df.columns if c != ROW)}); rename the column or set "
                            f"data.{'text' if canon == 'text' else canon}_column"
                        ),
                    )
                )
    if issues:
        return ValidationOutcome(issues=issues, stats=stats)

    # classification without data.labels: the labels are the ones train has (all of train, before sampling)
    answers = d.label_answers()
    if cfg.task == "classification" and d.labels is None:
        answers = infer_labels(frames["train"].get_column(label_col).to_list())
        clash = _answer_clashes(answers)
        if len(answers) < 2 or clash:
            reason = (
                f"train has {len(answers)} distinct label(s); classification needs at least two"
                if len(answers) < 2
                else f"labels {clash} would be answered by the same words"
            )
            issues.append(
                Issue(
                    check="labels",
                    severity="error",
                    split="train",
                    message=f"data.labels is not set and {reason}; declare data.labels (label -> answer word)",
                )
            )
            return ValidationOutcome(issues=issues, stats=stats)
        stats["labels_inferred"] = answers
    labels = list(answers) if cfg.task == "classification" else None

    # exact duplicates within train, over the whole file (before sampling: a dropped repeat must not eat a
    # label's sampled rows)
    key = [text_col, label_col]
    full = frames["train"]
    real = pl.col(text_col).is_not_null() & pl.col(label_col).is_not_null()
    repeat = full.select(pl.struct(key).is_duplicated() & ~pl.struct(key).is_first_distinct() & real).to_series()
    dup_rows = full.filter(repeat).get_column(ROW).to_list()
    if dup_rows:
        issues.append(
            _policy_issue(
                d.duplicates,
                "duplicates",
                f"train has {len(dup_rows)} exact duplicate row(s) (repeats of an earlier row)",
                "train",
                dup_rows,
                "remove them or set data.duplicates: drop",
            )
        )
        if d.duplicates == "drop":
            frames["train"] = full.filter(~repeat)

    # sample and split first, so that only the rows this run uses are judged
    # generation: an input with several reference rows is one eval example (scored against all of them), so
    # max_eval_rows samples inputs, not rows; classification samples per label (every label kept)
    by_input = text_col if cfg.task == "generation" else None
    strata = label_col if labels else None
    floor = d.min_examples_per_label
    train = sample(frames["train"], d.max_train_rows, d.split_seed, stratify=strata, min_per_group=floor)
    if "eval" in frames:
        evl = sample(frames["eval"], d.max_eval_rows, d.split_seed, by=by_input, stratify=strata)
    else:
        train, evl = split(train, fraction=d.eval_fraction, seed=d.split_seed, stratify=strata)
        evl = sample(evl, d.max_eval_rows, d.split_seed, by=by_input, stratify=strata)
    dev = frames.get("dev")
    if dev is None and d.dev_fraction:  # the selection split, held out of the sampled train rows
        train, dev = split(train, fraction=d.dev_fraction, seed=d.split_seed + 1, stratify=strata)
    if strata and (d.max_train_rows or d.max_eval_rows):
        stats["sampling"] = "stratified by label"
    schema = schema_for(cfg.task, labels)
    splits = [("train", train), ("eval", evl)] + ([("dev", dev)] if dev is not None else [])
    for split_name, df in splits:
        found = _pandera_issues(df, schema, split_name, user_cols)
        for i in found:
            if d.label_pattern and i.check == "null_values" and f"'{user_cols[label_col]}'" in i.message:
                i.message += f" or labels that do not match data.label_pattern '{d.label_pattern}'"
        if "labels_inferred" in stats:  # the label set is train's: an unknown eval label was never seen in train
            for i in found:
                if i.check == "unknown_labels":
                    i.message = i.message.replace(
                        "labels not in data.labels", "labels never seen in train (data.labels not set)"
                    ).replace("add the labels", "declare data.labels")
        issues.extend(found)
    train = _valid_rows(train, (text_col, label_col))
    evl = _valid_rows(evl, (text_col, label_col))
    if labels:
        train = train.filter(pl.col(label_col).is_in(labels))
        evl = evl.filter(pl.col(label_col).is_in(labels))

    if cfg.task == "classification":
        conflicts = (
            train.group_by(text_col).agg(pl.col(label_col).n_unique().alias("n"), pl.col(ROW)).filter(pl.col("n") > 1)
        )
        if conflicts.height:
            rows = sorted(r for rs in conflicts.get_column(ROW).to_list() for r in rs)
            issues.append(
                Issue(
                    check="conflicting_labels",
                    severity="error",
                    split="train",
                    message=f"{conflicts.height} text(s) appear in train with different labels; fix the labels",
                    rows=rows,
                )
            )

    # leakage: an eval input that is also a train input
    train_texts = set(train.get_column(text_col).to_list())
    leak = evl.filter(pl.col(text_col).is_in(list(train_texts)))
    if leak.height:
        issues.append(
            _policy_issue(
                d.leakage,
                "leakage",
                f"{leak.height} eval row(s) also occur in train (train/eval overlap inflates the eval score)",
                "eval",
                leak.get_column(ROW).to_list(),
                "remove them or set data.leakage: drop",
            )
        )
        if d.leakage == "drop":
            evl = evl.filter(~pl.col(text_col).is_in(list(train_texts)))

    if evl.height == 0:
        issues.append(Issue(check="eval_rows", severity="error", split="eval", message="no usable eval rows are left"))
    if dev is not None:
        dev = _valid_rows(dev, (text_col, label_col))
        if labels:
            dev = dev.filter(pl.col(label_col).is_in(labels))
        # a selection row that also judges (eval) or trains would choose on what it is judged by
        seen = set(evl.get_column(text_col).to_list()) | set(train.get_column(text_col).to_list())
        overlap = dev.filter(pl.col(text_col).is_in(list(seen)))
        if overlap.height:
            issues.append(
                Issue(
                    check="dev_overlap",
                    severity="warning",
                    split="dev",
                    message=f"{overlap.height} dev row(s) also occur in train or eval (dropped from dev)",
                    rows=overlap.get_column(ROW).to_list(),
                )
            )
            dev = dev.filter(~pl.col(text_col).is_in(list(seen)))
        if dev.height == 0:
            issues.append(Issue("dev_rows", "error", "no usable dev rows are left; check data.dev", "dev"))

    # examples per label and class balance
    if labels:
        counts = {lab: 0 for lab in labels}
        counts.update(dict(train.group_by(label_col).len().iter_rows()))
        eval_counts = {lab: 0 for lab in labels}
        eval_counts.update(dict(evl.group_by(label_col).len().iter_rows()))
        stats["class_balance"] = {"train": counts, "eval": eval_counts}
        few = {lab: n for lab, n in counts.items() if n < d.min_examples_per_label}
        if few:
            issues.append(
                Issue(
                    check="min_examples_per_label",
                    severity="error",
                    split="train",
                    message=(
                        f"labels with fewer than {d.min_examples_per_label} train rows: "
                        + ", ".join(f"{k} ({v})" for k, v in few.items())
                        + "; add examples or lower data.min_examples_per_label"
                    ),
                )
            )
        nonzero = [n for n in counts.values() if n]
        if nonzero and max(nonzero) > 10 * min(nonzero) and cfg.gate.metric != "macro_f1":
            issues.append(
                Issue(
                    check="class_balance",
                    severity="warning",
                    split="train",
                    message=f"labels are imbalanced (largest/smallest = {max(nonzero) / min(nonzero):.1f}); prefer "
                    "macro_f1 as gate metric",
                )
            )

    # token length of prompt + answer vs the training max length
    max_len = cfg.method.max_length
    conversational = "conversation_format" in stats
    builder = PromptBuilder(tokenizer, cfg.prompt, cfg.task, list(answers.values()), conversation=conversational)
    overhead = builder.overhead_tokens()
    for split_name, df in (("train", train), ("eval", evl)):
        if df.height == 0:
            continue
        texts = df.get_column(text_col).to_list()
        if conversational:  # the rendered turns (system, instruction, template) are the prompt
            texts = [builder.render(t) for t in texts]
        text_lens = token_lengths(tokenizer, texts, desc=f"validate: tokens ({split_name})")
        if cfg.task == "classification":
            per_label = {lab: len(builder.answer_ids(a)) for lab, a in answers.items()}
            ans = [per_label[lab] for lab in df.get_column(label_col).to_list()]
        else:
            ans = [n + 1 for n in token_lengths(tokenizer, df.get_column(label_col).to_list())]
        totals = [overhead + t + a for t, a in zip(text_lens, ans)]
        stats.setdefault("tokens", {})[split_name] = {
            "max": max(totals),
            "mean": round(sum(totals) / len(totals), 1),
            "total": sum(min(n, max_len) for n in totals),
            "limit": max_len,
        }
        over = [r for r, n in zip(df.get_column(ROW).to_list(), totals) if n > max_len]
        if over:
            issues.append(
                _policy_issue(
                    "error" if d.too_long == "error" else "warn",
                    "too_long",
                    f"{len(over)} {split_name} row(s) exceed method.max_length={max_len} tokens (prompt + answer)"
                    + (" and will be truncated" if d.too_long == "truncate" else ""),
                    split_name,
                    over,
                    "shorten them, raise method.max_length, or set data.too_long: truncate"
                    + (" (conversations lose their oldest exchanges first)" if conversational else ""),
                )
            )

    if "train" in stats.get("tokens", {}):
        epochs = getattr(cfg.method, "epochs", 1) or 1
        stats["training_tokens"] = stats["tokens"]["train"]["total"] * epochs

    rag = cfg.baselines.rag
    if rag is not None:  # the RAG rung's document collection: readable and non-empty, checked before any model runs
        folder = cfg.resolve(rag.documents)
        try:
            chunks = load_chunks(folder, chunk_words=rag.chunk_words, overlap_words=rag.overlap_words)
            stats["documents"] = {"folder": str(folder), "chunks": len(chunks), "files": len(document_files(folder))}
        except DocumentError as exc:
            issues.append(
                Issue(
                    check="documents",
                    severity="error",
                    split="documents",
                    message=f"{exc}; fix the folder or set baselines.rag.documents",
                )
            )

    stats["rows"] = {"train": train.height, "eval": evl.height}
    stats["sources"] = {
        "train": str(cfg.resolve(d.train)),
        "eval": str(cfg.resolve(d.eval)) if d.eval else "split from train",
    }
    if dev is not None:
        stats["rows"]["dev"] = dev.height
    out = ValidationOutcome(issues=issues, stats=stats)
    if out.ok:
        stats["data_hash"] = frame_hash(*[f for f in (train, evl, dev) if f is not None], columns=(text_col, label_col))
        if cfg.task == "generation":
            evl = group_references(evl)
            stats["rows"]["eval"] = evl.height
            stats["eval_references"] = int(evl.get_column("references").list.len().sum())
        out.train, out.eval, out.dev = train, evl, dev
    return out


def group_references(evl: pl.DataFrame) -> pl.DataFrame:
    """Generation eval: one row per distinct input with every reference in ``references`` (first row's number kept)."""
    return (
        evl.group_by("input", maintain_order=True)
        .agg(pl.col(ROW).first(), pl.col("target").first(), pl.col("target").alias("references"))
        .select(ROW, "input", "target", "references")
    )


def validate_run(cfg: TunegateConfig, model_path: str, run_dir: Path) -> ValidationResult:
    """Every data check with the base model's tokenizer; the report goes to ``run_dir``, and on success the
    normalized train/eval frames as ``data/{train,eval}.parquet`` with what later stages need (hash, train mean)."""
    outcome = validate(cfg, load_tokenizer(model_path))
    md, js = write_report(outcome, run_dir)
    resolved = resolved_data(cfg, outcome)
    if outcome.ok and resolved and (run_dir / "config.yaml").is_file():
        # the run's resolved config (what the registry keeps, what serving and re-scoring read) names them
        write_run_config(cfg.with_data(resolved), run_dir)
    dataset = None
    if outcome.ok:
        data_dir = run_dir / "data"
        data_dir.mkdir(exist_ok=True)
        outcome.train.write_parquet(data_dir / "train.parquet")
        outcome.eval.write_parquet(data_dir / "eval.parquet")
        if outcome.dev is not None:
            outcome.dev.write_parquet(data_dir / "dev.parquet")
        train_mean = None
        if cfg.task == "regression":  # an answer without a number counts as the train mean
            train_mean = float(outcome.train.get_column("label").str.strip_chars().cast(pl.Float64).mean())
        dataset = DatasetRef(
            train_path=str(data_dir / "train.parquet"),
            eval_path=str(data_dir / "eval.parquet"),
            data_hash=outcome.stats["data_hash"],
            n_train=outcome.train.height,
            n_eval=outcome.eval.height,
            train_mean=train_mean,
            dev_path=str(data_dir / "dev.parquet") if outcome.dev is not None else None,
            n_dev=0 if outcome.dev is None else outcome.dev.height,
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
        resolved_data=resolved,
    )


def resolved_data(cfg: TunegateConfig, outcome: ValidationOutcome) -> dict[str, Any]:
    """The data settings the files decided: labels found in train, a conversation format 'auto' recognised."""
    out: dict[str, Any] = {}
    if outcome.stats.get("labels_inferred") and cfg.data.labels is None:
        out["labels"] = outcome.stats["labels_inferred"]
    if outcome.stats.get("conversation_format") and cfg.data.format == "auto":
        out["format"] = outcome.stats["conversation_format"]
    return out


def write_report(outcome: ValidationOutcome, out_dir: Path) -> tuple[Path, Path]:
    """validation.json and validation.md in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "validation.json"
    md = out_dir / "validation.md"
    js.write_text(
        json.dumps(
            {
                "ok": outcome.ok,
                "summary": outcome.summary(),
                "issues": [asdict(i) for i in outcome.issues],
                "stats": outcome.stats,
            },
            indent=2,
        )
    )
    md.write_text(render_markdown(outcome))
    return md, js


def render_markdown(outcome: ValidationOutcome) -> str:
    lines = ["# Data validation", "", f"**{'PASSED' if outcome.ok else 'FAILED'}**: {outcome.summary()}", ""]
    if outcome.issues:
        lines += [
            "| severity | check | split | message | rows (1-based, in the source file) |",
            "|---|---|---|---|---|",
        ]
        for i in outcome.issues:
            rows = ", ".join(str(r) for r in i.rows) if i.rows else ""
            lines.append(f"| {i.severity} | {i.check} | {i.split} | {i.message} | {rows} |")
        lines.append("")
    rows = outcome.stats.get("rows")
    if rows:
        dev = f", dev (selection only) {rows['dev']}" if "dev" in rows else ""
        lines += [f"Rows used: train {rows['train']}, eval {rows['eval']}{dev}.", ""]
    if outcome.stats.get("sampling"):
        lines += [f"Sampling (data.max_train_rows / max_eval_rows): {outcome.stats['sampling']}.", ""]
    bal = outcome.stats.get("class_balance")
    inferred = outcome.stats.get("labels_inferred")
    if bal:
        lines += ["## Class balance", ""]
        if inferred:
            lines += [
                f"data.labels is not set: the {len(inferred)} labels below were found in train; each is answered by "
                "the words shown (declare data.labels to choose them).",
                "",
                "| label | answer | train | eval |",
                "|---|---|---|---|",
            ]
            for lab, n in bal["train"].items():
                lines.append(f"| {lab} | {inferred.get(lab, lab)} | {n} | {bal['eval'].get(lab, 0)} |")
        else:
            lines += ["| label | train | eval |", "|---|---|---|"]
            for lab, n in bal["train"].items():
                lines.append(f"| {lab} | {n} | {bal['eval'].get(lab, 0)} |")
        lines.append("")
    tok = outcome.stats.get("tokens")
    if tok:
        lines += [
            "## Token lengths (prompt + answer)",
            "",
            "| split | mean | max | total (rows cut to the limit) | limit |",
            "|---|---|---|---|---|",
        ]
        for s, t in tok.items():
            lines.append(f"| {s} | {t['mean']} | {t['max']} | {t.get('total', '')} | {t['limit']} |")
        train_tok = outcome.stats.get("training_tokens")
        if train_tok:
            lines += [
                "",
                f"Training will process about {train_tok:,} tokens (train total x epochs); `tunegate plan` turns that "
                "into time and cost on this machine.",
            ]
        lines.append("")
    return "\n".join(lines)
