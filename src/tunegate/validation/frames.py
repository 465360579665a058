"""How validation reads the data: the whole-file index of light columns, the rows a run uses read on demand, train
streamed in batches with its tokens counted, pandera failures turned into issues naming rows and fields."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pandera.polars as pa
import polars as pl

from tunegate.conversations import conversation_targets
from tunegate.data import ROW, Table, same_text_expr, update_hash
from tunegate.progress import bar as progress_bar
from tunegate.prompts import PromptBuilder
from tunegate.validation.issues import Issue

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
                f"{split_name} labels not in data.labels: {', '.join(map(repr, bad))}; fix the rows or add the labels",
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


def group_references(evl: pl.DataFrame) -> pl.DataFrame:
    """Generation eval: one row per distinct input with every reference in ``references`` (first row's number kept)."""
    extra = [c for c in evl.columns if c not in (ROW, "input", "target", "references")]  # data.slice_columns
    firsts = [pl.col(c).first() for c in extra]
    return (
        evl.group_by("input", maintain_order=True)
        .agg(pl.col(ROW).first(), pl.col("target").first(), pl.col("target").alias("references"), *firsts)
        .select(ROW, "input", "target", "references", *extra)
    )
