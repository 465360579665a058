"""Data validation: every check runs, every failure is collected into one report.

Checks: file readable, required columns (pandera schema), no null/blank text, labels
in the declared set, exact duplicates within train, train/eval overlap (leakage),
examples per label, token length vs ``method.max_length``, class balance. Errors stop
the run; warnings are reported. The report names the failing rows by their row
number in the source file (1-based, header excluded).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandera.polars as pa
import polars as pl

from tunegate.config import CONVERSATION_FORMATS, TunegateConfig
from tunegate.conversations import conversation_targets
from tunegate.data import (
    ROW,
    DataReadError,
    Table,
    canonical_columns,
    conversation_format,
    infer_labels,
    read_conversations,
    same_text_expr,
    sample,
    scan_table,
    source_columns,
    split,
    to_canonical,
    update_hash,
)
from tunegate.ladder import core as ladder
from tunegate.modeling import context_length, load_tokenizer
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
    train_rows: pl.LazyFrame | None = None  # read from the source on demand: a big train file is never held whole
    eval: pl.DataFrame | None = None
    dev: pl.DataFrame | None = None  # the selection split, when configured

    @property
    def train(self) -> pl.DataFrame | None:
        return None if self.train_rows is None else self.train_rows.collect()

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


TOKENIZE_BATCH = 10_000  # texts tokenized at once: only their lengths are kept
TOKENIZE_PROGRESS_MIN = 50_000  # rows from which tokenizing gets a progress bar


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    return [len(x) for x in tokenizer(texts, add_special_tokens=False).input_ids]


LENGTH_SHIFT = 2.0  # median input lengths of train and eval this many times apart: a warning


def _length_shift(totals: dict[str, pl.Series], overhead: int, *, from_train: bool) -> Issue | None:
    """A warning when train's and eval's inputs differ in length by :data:`LENGTH_SHIFT` or more (medians, prompt
    template excluded): the splits likely come from different distributions (SST-2: phrases in train, whole
    sentences in eval), so what is chosen on train-like rows (a selection split drawn from train) may not hold on
    eval."""
    if set(totals) != {"train", "eval"} or min(t.len() for t in totals.values()) < 20:
        return None
    med = {k: max(float(v.median()) - overhead, 1.0) for k, v in totals.items()}
    ratio = max(med.values()) / min(med.values())
    if ratio < LENGTH_SHIFT:
        return None
    advice = (
        "the selection split (data.dev_fraction) is drawn from train, so it may rank rungs, seeds and methods "
        "differently from eval; give data.dev rows drawn like eval"
        if from_train
        else "a model chosen or trained on train-like rows may do differently on eval; check that both come from "
        "the same source"
    )
    return Issue(
        check="length_shift",
        severity="warning",
        split="eval",
        message=f"train and eval inputs differ in length: a median of {med['train']:.0f} vs {med['eval']:.0f} "
        f"tokens ({ratio:.1f}x), as if drawn from different distributions; {advice}",
    )


def _token_totals(
    tokenizer,
    builder: PromptBuilder,
    per_label: dict[str, int],
    conversational: bool,
    columns: tuple[str, str],
    df: pl.DataFrame,
    desc: str | None = None,
) -> pl.Series:
    """Tokens of each row's training sequence (prompt + answer), tokenized in batches of TOKENIZE_BATCH rows: only
    the counts are kept, so memory is bounded by a batch, not by the file. ``per_label``: classification's answer
    lengths; else each target is tokenized (+1 for the end token)."""
    text_col, label_col = columns
    overhead = builder.overhead_tokens()
    parts = [pl.Series([], dtype=pl.UInt32)]
    with progress_bar(df.height, desc if df.height >= TOKENIZE_PROGRESS_MIN else None, "row") as bar:
        for start in range(0, df.height, TOKENIZE_BATCH):
            part = df.slice(start, TOKENIZE_BATCH)
            texts = part.get_column(text_col).to_list()
            if conversational:  # the rendered turns (system, instruction, template) are the prompt
                texts = [builder.render(t) for t in texts]
            targets = part.get_column(label_col).to_list()
            answer = (
                [per_label[t] for t in targets] if per_label else [n + 1 for n in token_lengths(tokenizer, targets)]
            )
            lens = token_lengths(tokenizer, texts)
            parts.append(pl.Series([overhead + n + a for n, a in zip(lens, answer)], dtype=pl.UInt32))
            bar.update(part.height)
    return pl.concat(parts)


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


TEXT_HASH, PAIR_HASH, PRESENT, USABLE = "_th", "_ph", "_present", "_usable"  # the whole-file index's columns
SAME = "_same"  # a text as the overlap checks compare it (data.same_text)
HASH_SEED = 20  # any fixed seed: hashes are only compared within one validation


def _usable(*cols: str) -> pl.Expr:
    """Every one of ``cols`` present and not blank: a row the run can use."""
    cond = pl.lit(True)
    for c in cols:
        cond = cond & pl.col(c).is_not_null() & (pl.col(c).str.strip_chars().str.len_chars() > 0)
    return cond


def _index_query(lf: pl.LazyFrame, text_col: str, label_col: str, with_label: bool) -> pl.LazyFrame:
    """The light columns the whole-file checks need (duplicates, labels, sampling, splitting, overlaps): the row
    number, hashes of the text and of (text, label), whether both are present (and usable), and the label for
    classification. A few bytes per row, read by a streaming scan; the texts are read only for the rows used."""
    cols = [
        pl.col(ROW),
        same_text_expr(text_col).hash(HASH_SEED).alias(TEXT_HASH),
        pl.struct(same_text_expr(text_col), label_col).hash(HASH_SEED).alias(PAIR_HASH),
        (pl.col(text_col).is_not_null() & pl.col(label_col).is_not_null()).alias(PRESENT),
        _usable(text_col, label_col).alias(USABLE),
    ]
    return lf.select(cols + ([pl.col(label_col)] if with_label else []))


def _select(table: Table, selected: pl.DataFrame, columns: tuple[str, ...], total: int | None = None) -> pl.LazyFrame:
    """The rows of ``table`` whose numbers ``selected`` holds (all of them when it has ``total`` rows), with
    ``columns`` (and the conversation, for conversation files), in file order, lazily."""
    names = table.columns()
    keep = [ROW, *columns] + (["conversation"] if "conversation" in names and "conversation" not in columns else [])
    query = table.lazy.select(keep)
    if total is None or selected.height < total:
        query = query.filter(pl.col(ROW).is_in(selected.get_column(ROW).implode()))
    return query


def _rows(table: Table, selected: pl.DataFrame, columns: tuple[str, ...], total: int) -> pl.DataFrame:
    return table.collect(_select(table, selected, columns, total))


def _repeats(table: Table, index: pl.DataFrame, key: tuple[str, str]) -> list[int]:
    """Rows (numbers) that repeat an earlier row (the same text, :func:`same_text`, and the same label).
    Candidates share a hash in the index; their values are read and compared, so a hash collision never flags a
    row."""
    cand = index.filter(pl.col(PAIR_HASH).is_duplicated() & pl.col(PRESENT))
    if cand.height == 0:
        return []
    text_col, label_col = key
    rows = _rows(table, cand, key, index.height).with_columns(same_text_expr(text_col).alias(SAME))
    pair = pl.struct(SAME, label_col)
    return rows.filter(pair.is_duplicated() & ~pair.is_first_distinct()).get_column(ROW).to_list()


def _conflicts(table: Table, train: pl.DataFrame, text_col: str, label_col: str) -> pl.DataFrame:
    """Train rows whose text (:func:`same_text`) also appears with another label (candidates by hash, then
    compared as text)."""
    cand = train.filter(pl.col(label_col).n_unique().over(TEXT_HASH) > 1)
    if cand.height == 0:
        return pl.DataFrame(schema={ROW: pl.UInt32, text_col: pl.Utf8, SAME: pl.Utf8})
    rows = _rows(table, cand, (text_col, label_col), train.height + 1).with_columns(
        same_text_expr(text_col).alias(SAME)
    )
    return rows.filter(pl.col(label_col).n_unique().over(SAME) > 1)


def _also_in(df: pl.DataFrame, text_col: str, table: Table, train: pl.DataFrame) -> pl.Series:
    """Which rows of ``df`` have a text that the ``train`` rows of ``table`` also have (:func:`same_text`; by
    hash, then as text)."""
    hashes = df.select(same_text_expr(text_col).hash(HASH_SEED)).to_series()
    cand = train.filter(pl.col(TEXT_HASH).is_in(hashes.implode()))
    if cand.height == 0:
        return pl.Series(text_col, [False] * df.height, dtype=pl.Boolean)
    texts = _rows(table, cand, (text_col,), train.height + 1).select(same_text_expr(text_col)).to_series()
    return df.select(same_text_expr(text_col)).to_series().is_in(texts.implode())


@dataclass
class TrainScan:
    """What one streamed pass over the train rows found: schema failures (all rows), and for the rows kept their
    numbers, token counts (per row, and per training example for conversations), the content hash so far and the
    sum of numeric labels (regression's mean)."""

    failures: pl.DataFrame
    rows: pl.Series
    tokens: pl.Series
    example_tokens: pl.Series
    hasher: Any
    label_sum: float


def _scan_train(
    table: Table,
    query: pl.LazyFrame,
    n_rows: int,
    keep: pl.Expr,
    schema: pa.DataFrameSchema,
    count,
    columns: tuple[str, str],
    train_on: str | None,
) -> TrainScan:
    """Validate, count tokens and hash the train rows in batches of TOKENIZE_BATCH: memory is bounded by a batch
    and a few bytes per row, never by the file."""
    fails, rows, tokens, examples = [], [], [], []
    h, first, label_sum = hashlib.sha256(), True, 0.0
    label = columns[1]
    with progress_bar(n_rows, "validate: train rows" if n_rows >= TOKENIZE_PROGRESS_MIN else None, "row") as bar:
        for batch in table.batches(query, TOKENIZE_BATCH):
            fails.append(_pandera_failures(batch, schema))
            ok = batch.filter(keep)
            if ok.height:
                rows.append(ok.get_column(ROW))
                tokens.append(count(ok))
                if train_on is not None:  # conversations: one example per trained assistant turn
                    pairs = conversation_targets(ok, train_on)
                    ex = pl.DataFrame(
                        {columns[0]: [p for p, _ in pairs], columns[1]: [a for _, a in pairs]},
                        schema={c: pl.Utf8 for c in columns},
                    )
                    tokens_ex = count(ex) if ex.height else pl.Series([], dtype=pl.UInt32)
                    examples.append(tokens_ex)
                update_hash(h, ok, columns, header=first, end=False)
                first = False
                label_sum += ok.get_column(label).str.strip_chars().cast(pl.Float64, strict=False).sum() or 0.0
            bar.update(batch.height)
    if first:  # no rows: the hash of an empty frame
        update_hash(h, pl.DataFrame(schema={c: pl.Utf8 for c in columns}), columns, end=False)
    h.update(b"\x00")
    empty = pl.Series([], dtype=pl.UInt32)
    return TrainScan(
        failures=pl.concat(fails, how="vertical_relaxed") if fails else _pandera_failures(None, schema),
        rows=pl.concat(rows) if rows else empty,
        tokens=pl.concat(tokens) if tokens else empty,
        example_tokens=pl.concat(examples) if examples else empty,
        hasher=h,
        label_sum=label_sum,
    )


def _pandera_failures(df: pl.DataFrame | None, schema: pa.DataFrameSchema) -> pl.DataFrame:
    """The schema's failure cases on ``df``: column, check, the source row number and the failing value."""
    out_schema = {"column": pl.Utf8, "check": pl.Utf8, ROW: pl.UInt32, "failure_case": pl.Utf8}
    if df is None or df.height == 0:
        return pl.DataFrame(schema=out_schema)
    try:
        schema.validate(df, lazy=True)
        return pl.DataFrame(schema=out_schema)
    except pa.errors.SchemaErrors as exc:
        fc = exc.failure_cases
    rows_of = df.get_column(ROW)
    idx = fc.get_column("index").to_list()
    return pl.DataFrame(
        {
            "column": fc.get_column("column").cast(pl.Utf8),
            "check": fc.get_column("check").cast(pl.Utf8),
            ROW: [None if i is None else rows_of[i] for i in idx],
            "failure_case": fc.get_column("failure_case").cast(pl.Utf8, strict=False),
        },
        schema=out_schema,
    )


def _failure_issues(
    fc: pl.DataFrame, split_name: str, col_names: dict[str, str], n_rows: int | None = None
) -> list[Issue]:
    """One issue per (column, check) that failed, naming its rows.

    A text column where a few rows are only a number ('2002' is a whole SST-2 phrase) keeps them with a warning;
    JSON objects or lists, or numbers in most rows (a numeric field read as the text), are errors."""
    issues: list[Issue] = []
    for (column, check), group in fc.group_by(["column", "check"], maintain_order=True):
        rows = sorted({r for r in group.get_column(ROW).to_list() if r is not None})
        user_col = col_names.get(column, column)
        if "not a text" in check and n_rows:
            values = [str(v).strip() for v in group.get_column("failure_case").to_list()]
            if not any(v[:1] in "{[" for v in values) and len(rows) < 0.5 * n_rows:
                issues.append(
                    Issue(
                        check="numeric_text",
                        severity="warning",
                        split=split_name,
                        message=f"{len(rows)} {split_name} row(s) of column '{user_col}' are only a number (e.g. "
                        f"{values[0]!r}); kept as text. If this is not the text column, set data.text_column",
                        rows=rows,
                    )
                )
                continue
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
        elif "not a text" in check:
            name, msg = (
                "not_text",
                f"{split_name} column '{user_col}' holds numbers or JSON objects/lists, not texts (a nested or "
                "numeric field read as the text column); point data.text_column at the field that holds the text",
            )
        else:
            name, msg = check, f"{split_name} column '{user_col}' fails {check}"
        issues.append(Issue(check=name, severity="error", split=split_name, message=msg, rows=rows))
    return issues


def _policy_issue(policy: str, check: str, message: str, split_name: str, rows: list[int], fix: str) -> Issue:
    severity = "error" if policy == "error" else "warning"
    suffix = f"; {fix}" if policy == "error" else (" (dropped)" if policy == "drop" else "")
    return Issue(check=check, severity=severity, split=split_name, message=message + suffix, rows=rows)


def validate(cfg: TunegateConfig, tokenizer, context: int | None = None) -> ValidationOutcome:
    """Run every check on the configured data; never raises for bad data. ``context``: the model's context length
    (``method.max_length`` must fit it)."""
    issues: list[Issue] = []
    stats: dict[str, Any] = {}
    d = cfg.data
    text_col, label_col = canonical_columns(cfg.task)
    user_cols = dict(zip(canonical_columns(cfg.task), source_columns(cfg.task, d)))

    tables: dict[str, Table] = {}
    for split_name, path in (("train", d.train), ("eval", d.eval), ("dev", d.dev)):
        if path is None:
            continue
        try:
            source = cfg.resolve(path)
            conv = conversation_format(source, d.format) if cfg.task_type.conversations else None
            if conv is not None:  # conversations: the canonical columns come from the turns
                frame, problems = read_conversations(source, conv, d.encoding)
                tables[split_name] = Table(source, conv, frame.lazy())
                issues.extend(_conversation_issues(problems, split_name, conv))
                stats.setdefault("conversation_format", conv)
                if frame.height == 0 and not problems:
                    issues.append(Issue("readable", "error", f"{source}: no conversations found", split_name))
            else:
                table = scan_table(source, d.format, d.columns, d.encoding)
                tables[split_name] = Table(table.path, table.kind, to_canonical(table.lazy, cfg.task, d))
        except DataReadError as exc:
            issues.append(Issue(check="readable", severity="error", split=split_name, message=str(exc)))
    if issues:
        return ValidationOutcome(issues=issues, stats=stats)

    for split_name, table in tables.items():
        found = table.columns()
        for canon in (text_col, label_col):
            if canon not in found:
                user = user_cols[canon]
                names = [c for c in found if c != ROW]
                hint = ""
                if len(names) == 1 and table.kind in ("csv", "tsv"):
                    other = next((d for d in (";", "\t", "|", ",") if d in names[0]), None)
                    if other:
                        hint = (
                            f"; the header looks {other!r}-separated: CSV files are read with ',' and .tsv files "
                            "with tabs, so re-save it as one of those"
                        )
                show = ", ".join(n if len(n) <= 80 else n[:77] + "..." for n in names[:20])
                issues.append(
                    Issue(
                        check="required_columns",
                        severity="error",
                        split=split_name,
                        message=(
                            f"{split_name} data ({table.path}) has no column '{user}' (columns found: {show}); "
                            f"rename the column or set data.{'text' if canon == 'text' else canon}_column{hint}"
                        ),
                    )
                )
    if issues:
        return ValidationOutcome(issues=issues, stats=stats)

    # the whole-file checks read only light columns (row number, hashes, the label), in bounded memory
    classification = cfg.task_type.has_labels
    index: dict[str, pl.DataFrame] = {}
    for split_name, table in tables.items():
        try:
            index[split_name] = table.collect(_index_query(table.lazy, text_col, label_col, classification))
            if index[split_name].height == 0 and table.kind not in CONVERSATION_FORMATS:
                raise DataReadError(f"{table.path}: no rows found (an empty file, or not {table.kind})")
        except DataReadError as exc:
            issues.append(Issue(check="readable", severity="error", split=split_name, message=str(exc)))
    if issues:
        return ValidationOutcome(issues=issues, stats=stats)
    totals = {k: v.height for k, v in index.items()}

    # classification without data.labels: the labels are the ones train has (all of train, before sampling)
    answers = d.label_answers()
    if classification and d.labels is None:
        answers = infer_labels(index["train"].get_column(label_col).unique().to_list())
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
    labels = list(answers) if classification else None

    # exact duplicates within train, over the whole file (before sampling: a dropped repeat must not eat a
    # label's sampled rows)
    dup_rows = _repeats(tables["train"], index["train"], (text_col, label_col))
    if dup_rows:
        issues.append(
            _policy_issue(
                d.duplicates,
                "duplicates",
                f"train has {len(dup_rows)} duplicate row(s) (repeats of an earlier row's text and label; case, "
                "spacing and punctuation ignored)",
                "train",
                dup_rows,
                "remove them or set data.duplicates: drop",
            )
        )
        if d.duplicates == "drop":
            index["train"] = index["train"].filter(~pl.col(ROW).is_in(pl.Series(dup_rows, dtype=pl.UInt32).implode()))

    # sample and split first (on the index), so that only the rows this run uses are read and judged
    # generation: an input with several reference rows is one eval example (scored against all of them), so
    # max_eval_rows samples inputs, not rows; classification samples per label (every label kept)
    by_input = TEXT_HASH if cfg.task_type.generates else None
    strata = label_col if labels else None
    floor = d.min_examples_per_label
    train = sample(index["train"], d.max_train_rows, d.split_seed, stratify=strata, min_per_group=floor)
    if "eval" in index:
        evl = sample(index["eval"], d.max_eval_rows, d.split_seed, by=by_input, stratify=strata)
    else:
        train, evl = split(train, fraction=d.eval_fraction, seed=d.split_seed, stratify=strata)
        evl = sample(evl, d.max_eval_rows, d.split_seed, by=by_input, stratify=strata)
    dev = index.get("dev")
    if dev is None and d.dev_fraction:  # the selection split, held out of the sampled train rows
        train, dev = split(train, fraction=d.dev_fraction, seed=d.split_seed + 1, stratify=strata)
    if strata and (d.max_train_rows or d.max_eval_rows):
        stats["sampling"] = "stratified by label"
    keep = _usable(text_col, label_col) & (pl.col(label_col).is_in(labels) if labels else pl.lit(True))
    # eval and dev (capped by max_eval_rows) are read whole; train is streamed in batches (:func:`_scan_train`)
    train_table = tables["train"]
    cols = (text_col, label_col)
    evl = _rows(tables.get("eval", train_table), evl, cols, totals.get("eval", totals["train"]))
    if dev is not None:
        dev = _rows(tables.get("dev", train_table), dev, cols, totals.get("dev", totals["train"]))
    train_rows = train.filter(pl.col(USABLE) & (pl.col(label_col).is_in(labels) if labels else pl.lit(True)))
    del index
    if classification:  # one text with several labels: data.duplicates says what to do (drop: every such row)
        clash = _conflicts(train_table, train_rows, text_col, label_col)
        if clash.height:
            rows = clash.get_column(ROW).to_list()
            issues.append(
                _policy_issue(
                    d.duplicates,
                    "conflicting_labels",
                    f"{clash.get_column(SAME).n_unique()} text(s) appear in train with different labels (case, "
                    "spacing and punctuation ignored)",
                    "train",
                    rows,
                    "fix the labels, or set data.duplicates: drop (drops every row of such a text)",
                )
            )
            if d.duplicates == "drop":
                gone = pl.col(ROW).is_in(pl.Series(rows, dtype=pl.UInt32).implode())
                train, train_rows = train.filter(~gone), train_rows.filter(~gone)

    schema = schema_for(cfg.task_type.answers, labels)
    conversational = "conversation_format" in stats
    builder = PromptBuilder(tokenizer, cfg.prompt, cfg.task, list(answers.values()), conversation=conversational)
    per_label = {lab: len(builder.answer_ids(a)) for lab, a in answers.items()} if classification else {}
    max_len = cfg.method.max_length
    if context is not None and max_len > context:
        issues.append(
            Issue(
                check="max_length",
                severity="error",
                split="train",
                message=f"method.max_length={max_len} exceeds the model's context of {context} tokens "
                "(max_position_embeddings in its config.json); set method.max_length to at most "
                f"{context}",
            )
        )
    fixed = builder.overhead_tokens() + max(per_label.values(), default=1)
    if fixed >= max_len:
        issues.append(
            Issue(
                check="max_length",
                severity="error",
                split="train",
                message="the prompt without its input (template, instruction"
                + (f", the {len(per_label)} labels" if per_label else "")
                + f") and the longest answer already take {fixed} tokens, method.max_length={max_len}: no "
                f"row's input would fit; raise method.max_length (e.g. to {fixed + 128}) or shorten "
                "prompt.instruction",
            )
        )
    count = partial(_token_totals, tokenizer, builder, per_label, conversational, (text_col, label_col))
    scan = _scan_train(
        train_table,
        _select(train_table, train, cols, totals["train"]),
        train.height,
        keep,
        schema,
        count,
        cols,
        d.train_on if conversational else None,
    )
    failures = {"train": scan.failures}
    failures.update(
        {name: _pandera_failures(df, schema) for name, df in (("eval", evl), ("dev", dev)) if df is not None}
    )
    sizes = {"train": train.height, "eval": evl.height, "dev": dev.height if dev is not None else 0}
    for split_name, fc in failures.items():
        found = _failure_issues(fc, split_name, user_cols, sizes.get(split_name))
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
    evl = evl.filter(keep)

    # leakage: an eval input that is also a train input
    in_train = _also_in(evl, text_col, train_table, train_rows)
    if in_train.any():
        leak = evl.filter(in_train)
        issues.append(
            _policy_issue(
                d.leakage,
                "leakage",
                f"{leak.height} eval row(s) also occur in train (case, spacing and punctuation ignored; "
                "train/eval overlap inflates the eval score)",
                "eval",
                leak.get_column(ROW).to_list(),
                "remove them or set data.leakage: drop",
            )
        )
        if d.leakage == "drop":
            evl = evl.filter(~in_train)

    if evl.height == 0:
        issues.append(Issue(check="eval_rows", severity="error", split="eval", message="no usable eval rows are left"))
    if dev is not None:
        dev = dev.filter(keep)
        # a selection row that also judges (eval) or trains would choose on what it is judged by
        seen = _also_in(dev, text_col, train_table, train_rows) | dev.select(
            same_text_expr(text_col)
        ).to_series().is_in(evl.select(same_text_expr(text_col)).to_series().implode())
        if seen.any():
            overlap = dev.filter(seen)
            issues.append(
                Issue(
                    check="dev_overlap",
                    severity="warning",
                    split="dev",
                    message=f"{overlap.height} dev row(s) also occur in train or eval (dropped from dev)",
                    rows=overlap.get_column(ROW).to_list(),
                )
            )
            dev = dev.filter(~seen)
        if dev.height == 0:
            issues.append(Issue("dev_rows", "error", "no usable dev rows are left; check data.dev", "dev"))

    # examples per label and class balance
    if labels:
        counts = {lab: 0 for lab in labels}
        counts.update(dict(train_rows.group_by(label_col).len().iter_rows()))
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
    token_totals = {"train": scan.tokens}
    if evl.height:
        token_totals["eval"] = count(evl, "validate: tokens (eval)")
    for split_name, totals_ in token_totals.items():
        if totals_.len() == 0:
            continue
        stats.setdefault("tokens", {})[split_name] = {
            "max": int(totals_.max()),
            "mean": round(float(totals_.mean()), 1),
            "total": int(totals_.clip(upper_bound=max_len).sum()),
            "limit": max_len,
        }
        row_numbers = scan.rows if split_name == "train" else evl.get_column(ROW)
        over = row_numbers.filter(totals_ > max_len).to_list()
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

    shift = _length_shift(token_totals, builder.overhead_tokens(), from_train=d.dev is None and bool(d.dev_fraction))
    if shift is not None:
        issues.append(shift)

    if "train" in stats.get("tokens", {}):
        epochs = getattr(cfg.method, "epochs", 1) or 1
        examples = scan.example_tokens if conversational else scan.tokens
        if conversational:  # one training example per trained assistant turn (data.train_on), its turns before it
            stats["training_examples"] = examples.len()
        stats["training_tokens"] = int(examples.clip(upper_bound=max_len).sum()) * epochs

    found, errors = ladder.preflight(cfg.baselines, cfg.ladder_context())  # e.g. RAG's documents, before any model
    stats.update(found)
    issues += [Issue(check="documents", severity="error", split="documents", message=m) for m in errors]

    stats["rows"] = {"train": train_rows.height, "eval": evl.height}
    stats["sources"] = {
        "train": str(cfg.resolve(d.train)),
        "eval": str(cfg.resolve(d.eval)) if d.eval else "split from train",
    }
    if dev is not None:
        stats["rows"]["dev"] = dev.height
    out = ValidationOutcome(issues=issues, stats=stats)
    if out.ok:
        h = scan.hasher
        for f in (evl, dev):
            if f is not None:
                update_hash(h, f, (text_col, label_col))
        stats["data_hash"] = h.hexdigest()
        if cfg.task_type.numeric:  # an answer without a number counts as the train mean
            stats["train_mean"] = scan.label_sum / max(train_rows.height, 1)
        if cfg.task_type.generates:  # every reference of an input judges its answer
            evl = group_references(evl)
            stats["rows"]["eval"] = evl.height
            stats["eval_references"] = int(evl.get_column("references").list.len().sum())
        out.train_rows = _select(train_table, train_rows, cols, totals["train"])
        out.eval, out.dev = evl, dev
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
    outcome = validate(cfg, load_tokenizer(model_path), context_length(model_path))
    md, js = write_report(outcome, run_dir)
    resolved = resolved_data(cfg, outcome)
    if outcome.ok and resolved and (run_dir / "config.yaml").is_file():
        # the run's resolved config (what the registry keeps, what serving and re-scoring read) names them
        write_run_config(cfg.with_data(resolved), run_dir)
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
        examples = outcome.stats.get("training_examples")
        if train_tok:
            what = (
                f"{examples:,} examples, one per trained assistant turn (data.train_on), x epochs"
                if examples is not None
                else "train total x epochs"
            )
            lines += [
                "",
                f"Training will process about {train_tok:,} tokens ({what}); `tunegate plan` turns that "
                "into time and cost on this machine.",
            ]
        lines.append("")
    return "\n".join(lines)
