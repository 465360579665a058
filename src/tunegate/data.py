"""Reading data files into canonical polars frames, sampling, splitting and hashing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from tunegate.config import DataConfig

ROW = "_row"  # 1-based row number in the source file, kept through sampling for reports


class DataReadError(Exception):
    """A file that cannot be read: named in the validation report, not a traceback."""


def canonical_columns(task: str) -> tuple[str, str]:
    return ("input", "target") if task == "generation" else ("text", "label")


def source_columns(task: str, data: DataConfig) -> tuple[str, str]:
    return (data.input_column, data.target_column) if task == "generation" else (data.text_column, data.label_column)


def _format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    ext = path.suffix.lower()
    known = {
        ".csv": "csv",
        ".tsv": "tsv",
        ".jsonl": "jsonl",
        ".ndjson": "jsonl",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    if ext not in known:
        raise DataReadError(
            f"{path}: unknown file extension '{ext or '(none)'}'. Use .csv, .tsv, .jsonl or .parquet, "
            "or set data.format explicitly"
        )
    return known[ext]


def read_table(path: Path, fmt: str = "auto", columns: list[str] | None = None) -> pl.DataFrame:
    """Read a data file with every column as string; raise DataReadError with a readable reason.

    ``columns``: names for a CSV/TSV file without a header row (its first line is data).
    """
    if not path.exists():
        raise DataReadError(f"{path}: file not found. Check data.train / data.eval (relative to the config file)")
    kind = _format(path, fmt)
    try:
        headerless = {"has_header": False, "new_columns": list(columns)} if columns else {}
        if kind == "csv":
            df = pl.read_csv(path, infer_schema=False, **headerless)
        elif kind == "tsv":
            df = pl.read_csv(path, separator="\t", quote_char=None, infer_schema=False, **headerless)
        elif kind == "jsonl":
            df = pl.read_ndjson(path)
        else:
            df = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataReadError(f"{path}: could not be read as {kind} ({first})") from None
    if df.width == 0 or df.height == 0:
        raise DataReadError(f"{path}: no rows found (an empty file, or not {kind})")
    df = df.with_columns([pl.col(c).cast(pl.Utf8, strict=False) for c in df.columns if df.schema[c] != pl.Utf8])
    return df.with_row_index(ROW, offset=1)


def to_canonical(df: pl.DataFrame, task: str, data: DataConfig) -> pl.DataFrame:
    """Rename the configured columns to the canonical names; missing ones are left for the schema to report."""
    src = source_columns(task, data)
    dst = canonical_columns(task)
    for s, d in zip(src, dst):
        if s != d and d in df.columns:
            # a column that merely shares the canonical name is not the configured one
            df = df.drop(d)
    return df.rename({s: d for s, d in zip(src, dst) if s in df.columns and s != d})


def sample(df: pl.DataFrame, n: int | None, seed: int, by: str | None = None) -> pl.DataFrame:
    """A random sample of ``n`` rows; with ``by``, of ``n`` distinct values of that column (all their rows kept)."""
    if by is not None and by in df.columns:
        keys = df.get_column(by).unique(maintain_order=True)
        if n is None or keys.len() <= n:
            return df
        chosen = keys.sample(n=n, seed=seed, shuffle=True)
        return df.filter(pl.col(by).is_in(chosen.implode()))
    if n is None or df.height <= n:
        return df
    return df.sample(n=n, seed=seed, shuffle=True).sort(ROW)


def split(df: pl.DataFrame, *, fraction: float, seed: int, stratify: str | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Random train/eval split; stratified by ``stratify`` so every label keeps its share."""
    rng_col = "_u"
    df = df.with_columns(pl.Series(rng_col, _uniform(df.height, seed)))
    if stratify and stratify in df.columns:
        ranked = df.with_columns((pl.col(rng_col).rank("ordinal").over(stratify) / pl.len().over(stratify)).alias("_q"))
        eval_mask = pl.col("_q") <= fraction
        train, evl = ranked.filter(~eval_mask), ranked.filter(eval_mask)
        return train.drop(rng_col, "_q").sort(ROW), evl.drop(rng_col, "_q").sort(ROW)
    eval_mask = pl.col(rng_col) < fraction
    return df.filter(~eval_mask).drop(rng_col), df.filter(eval_mask).drop(rng_col)


def _uniform(n: int, seed: int) -> list[float]:
    import random

    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


def frame_hash(*frames: pl.DataFrame, columns: tuple[str, ...]) -> str:
    """Content hash of the canonical columns, row order included (order matters for training)."""
    h = hashlib.sha256()
    for df in frames:
        h.update(df.select(columns).write_csv().encode())
        h.update(b"\x00")
    return h.hexdigest()
