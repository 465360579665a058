"""Reading data files into canonical polars frames, sampling, splitting and hashing."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import polars as pl

from tunegate.config import DataConfig

ROW = "_row"
HASH_SLICE_ROWS = 100_000  # 1-based row number in the source file, kept through sampling for reports


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
        ".label": "lines",
    }
    if ext not in known:
        raise DataReadError(
            f"{path}: unknown file extension '{ext or '(none)'}'. Use .csv, .tsv, .jsonl or .parquet, "
            "or set data.format explicitly"
        )
    return known[ext]


def read_folder(path: Path) -> pl.DataFrame:
    """A folder as one table: a Hugging Face dataset saved with ``save_to_disk`` (its Arrow shards, class-label
    columns as their names), or a folder of Parquet files (all of them, in name order, sub-folders included)."""
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        raise DataReadError(
            f"{path}: a Hugging Face DatasetDict with splits {', '.join(splits) or '(none)'}; point data.train / "
            f"data.eval at one split's folder, e.g. {path / (splits[0] if splits else 'train')}"
        )
    if (path / "state.json").is_file():
        state = json.loads((path / "state.json").read_text())
        shards = [path / f["filename"] for f in state.get("_data_files", [])]
        try:
            df = pl.concat([pl.read_ipc_stream(f) for f in shards], how="vertical_relaxed")
        except Exception as exc:  # noqa: BLE001 - a damaged shard: say which folder
            raise DataReadError(f"{path}: a Hugging Face dataset folder whose data could not be read ({exc})") from None
        info = path / "dataset_info.json"
        return _class_label_names(df, json.loads(info.read_text()).get("features") if info.is_file() else None)
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise DataReadError(
            f"{path}: a folder with neither a saved Hugging Face dataset (state.json) nor Parquet files; point "
            "data.train / data.eval at a data file or such a folder"
        )
    return pl.concat([_read_parquet(f) for f in files], how="vertical_relaxed")


def _read_parquet(path: Path) -> pl.DataFrame:
    """A Parquet file; class-label columns of one written by Hugging Face ``datasets`` as their names."""
    df = pl.read_parquet(path)
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        features = json.loads(meta[b"huggingface"]).get("info", {}).get("features") if b"huggingface" in meta else None
    except Exception:  # noqa: BLE001 - metadata is a nicety; the data was read
        features = None
    return _class_label_names(df, features)


def _class_label_names(df: pl.DataFrame, features: dict | None) -> pl.DataFrame:
    """Hugging Face ``ClassLabel`` columns (stored as integers) as their names."""
    for col, feat in (features or {}).items():
        if isinstance(feat, dict) and feat.get("_type") == "ClassLabel" and col in df.columns:
            mapping = dict(enumerate(feat.get("names") or []))
            df = df.with_columns(pl.col(col).replace_strict(mapping, default=None, return_dtype=pl.Utf8))
    return df


def _as_text(df: pl.DataFrame) -> pl.DataFrame:
    """Every column as text: scalars cast, nested values (lists, structs) as JSON."""
    out = []
    for c in df.columns:
        dtype = df.schema[c]
        if dtype == pl.Utf8:
            continue
        if dtype.is_nested():
            values = [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in df[c].to_list()]
            out.append(pl.Series(c, values, dtype=pl.Utf8))
        else:
            out.append(pl.col(c).cast(pl.Utf8, strict=False))
    return df.with_columns(out) if out else df


def _decode(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except LookupError:
        raise DataReadError(f"{path}: unknown data.encoding '{encoding}' (e.g. utf-8, latin-1, cp1252)") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataReadError(
            f"{path}: line {line} is not valid {encoding} (byte {data[exc.start]:#04x}); set data.encoding to the "
            "file's encoding (e.g. latin-1 or cp1252) or re-save it as UTF-8"
        ) from None


def _read_lines(path: Path, columns: list[str] | None, encoding: str) -> pl.DataFrame:
    """One example per line, split at the first whitespace; ``_row`` is the line number (blank lines skipped)."""
    names = list(columns) if columns else ["label", "text"]
    if len(names) != 2:
        raise DataReadError(f"{path}: a 'lines' file has two columns; data.columns names {len(names)}")
    lines, first, rest = [], [], []
    for n, line in enumerate(_decode(path, encoding).splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        lines.append(n)
        first.append(parts[0])
        rest.append(parts[1] if len(parts) > 1 else "")
    return pl.DataFrame({ROW: pl.Series(lines, dtype=pl.UInt32), names[0]: first, names[1]: rest})


def read_table(
    path: Path, fmt: str = "auto", columns: list[str] | None = None, encoding: str = "utf-8"
) -> pl.DataFrame:
    """Read a data file (or a dataset folder, :func:`read_folder`) with every column as string; raise
    DataReadError with a readable reason.

    ``columns``: names for a CSV/TSV file without a header row (its first line is data).
    """
    if not path.exists():
        raise DataReadError(f"{path}: file not found. Check data.train / data.eval (relative to the config file)")
    if path.is_dir():
        df = read_folder(path)
        if df.width == 0 or df.height == 0:
            raise DataReadError(f"{path}: no rows found")
        return _as_text(df).with_row_index(ROW, offset=1)
    kind = _format(path, fmt)
    if kind == "lines":
        df = _read_lines(path, columns, encoding)
        if df.height == 0:
            raise DataReadError(f"{path}: no rows found (an empty file)")
        return df
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    source = path if utf8 or kind not in ("csv", "tsv") else io.BytesIO(_decode(path, encoding).encode())
    try:
        headerless = {"has_header": False, "new_columns": list(columns)} if columns else {}
        if kind == "csv":
            df = pl.read_csv(source, infer_schema=False, **headerless)
        elif kind == "tsv":
            df = pl.read_csv(source, separator="\t", quote_char=None, infer_schema=False, **headerless)
        elif kind == "jsonl":
            df = pl.read_ndjson(path)
        else:
            df = _read_parquet(path)
    except Exception as exc:  # polars raises several types for malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataReadError(f"{path}: could not be read as {kind} ({first})") from None
    if df.width == 0 or df.height == 0:
        raise DataReadError(f"{path}: no rows found (an empty file, or not {kind})")
    return _as_text(df).with_row_index(ROW, offset=1)


def conversation_format(path: Path, fmt: str) -> str | None:
    """'messages' / 'sharegpt' / 'alpaca' when ``path`` holds conversations (declared, or, for 'auto', a .jsonl
    file whose first record is one), else None."""
    from tunegate.config import CONVERSATION_FORMATS
    from tunegate.conversations import detect_format

    if fmt in CONVERSATION_FORMATS:
        return fmt
    if fmt != "auto" or path.is_dir() or path.suffix.lower() not in (".jsonl", ".ndjson") or not path.is_file():
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return detect_format(first) if isinstance(first, dict) else None
    return None


def read_conversations(path: Path, fmt: str, encoding: str = "utf-8"):
    """A conversation file as a frame (``_row`` = line, ``input`` = the turns before the last assistant turn,
    ``target`` = that turn, ``conversation`` = all turns, as JSON) and the problems of its bad lines."""
    from tunegate.conversations import read_jsonl, split_last, to_json

    if not path.exists():
        raise DataReadError(f"{path}: file not found. Check data.train / data.eval (relative to the config file)")
    try:
        res = read_jsonl(path, fmt, encoding)
    except ValueError as exc:
        raise DataReadError(str(exc)) from None
    rows, inputs, targets, full = [], [], [], []
    for line, turns in res.conversations.items():
        prompt, reference = split_last(turns)
        rows.append(line)
        inputs.append(to_json(prompt))
        targets.append(reference)
        full.append(to_json(turns))
    df = pl.DataFrame(
        {ROW: pl.Series(rows, dtype=pl.UInt32), "input": inputs, "target": targets, "conversation": full},
        schema={ROW: pl.UInt32, "input": pl.Utf8, "target": pl.Utf8, "conversation": pl.Utf8},
    )
    return df, res.problems


def to_canonical(df: pl.DataFrame, task: str, data: DataConfig) -> pl.DataFrame:
    """Rename the configured columns to the canonical names; missing ones are left for the schema to report.

    ``data.label_pattern``: the label is its first group (no match: null, reported by the schema as a missing
    label)."""
    src = source_columns(task, data)
    dst = canonical_columns(task)
    for s, d in zip(src, dst):
        if s != d and d in df.columns:
            # a column that merely shares the canonical name is not the configured one
            df = df.drop(d)
    df = df.rename({s: d for s, d in zip(src, dst) if s in df.columns and s != d})
    if data.label_pattern and task == "classification" and "label" in df.columns:
        df = df.with_columns(pl.col("label").str.extract(data.label_pattern, 1))
    return df


def sample(
    df: pl.DataFrame,
    n: int | None,
    seed: int,
    by: str | None = None,
    stratify: str | None = None,
    min_per_group: int = 1,
) -> pl.DataFrame:
    """A random sample of ``n`` rows.

    ``by``: of ``n`` distinct values of that column (all their rows kept). ``stratify``: per
    value of that column (a label), see :func:`stratified_quotas`.
    """
    if by is not None and by in df.columns:
        keys = df.get_column(by).unique(maintain_order=True)
        if n is None or keys.len() <= n:
            return df
        chosen = keys.sample(n=n, seed=seed, shuffle=True)
        return df.filter(pl.col(by).is_in(chosen.implode()))
    if n is None or df.height <= n:
        return df
    if stratify is not None and stratify in df.columns:
        counts = dict(df.group_by(stratify).len().iter_rows())
        quotas = stratified_quotas(counts, n, min_per_group)
        u = "_u"
        ranked = df.with_columns(pl.Series(u, _uniform(df.height, seed))).with_columns(
            pl.col(u).rank("ordinal").over(stratify).alias("_k")
        )
        keep = pl.col("_k") <= pl.col(stratify).replace_strict(quotas, default=0, return_dtype=pl.Int64)
        return ranked.filter(keep).drop(u, "_k").sort(ROW)
    return df.sample(n=n, seed=seed, shuffle=True).sort(ROW)


def stratified_quotas(counts: dict, n: int, min_per_group: int = 1) -> dict:
    """Rows to draw from each group so that ``n`` rows keep every group and the groups' shares.

    The shares of ``n`` in proportion to the groups' sizes (largest remainders); then a group below
    ``min(its rows, min_per_group)`` is raised to it (no label is lost to chance), the rows taken from
    the largest quotas. When ``n`` is smaller than the groups' floors together, the floors win (more
    than ``n`` rows: keeping every label matters more than the row cap).
    """
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    ideal = {g: n * c / total for g, c in counts.items()}
    quota = {g: int(x) for g, x in ideal.items()}
    for g in sorted(counts, key=lambda g: ideal[g] - quota[g], reverse=True)[: n - sum(quota.values())]:
        quota[g] += 1
    floor = {g: min(c, min_per_group) for g, c in counts.items()}
    deficit = sum(max(0, floor[g] - quota[g]) for g in counts)
    quota = {g: max(q, floor[g]) for g, q in quota.items()}
    while deficit > 0:
        g = max(counts, key=lambda g: quota[g] - floor[g])
        if quota[g] <= floor[g]:
            break  # every group at its floor
        quota[g] -= 1
        deficit -= 1
    return quota


def infer_labels(values: list) -> dict[str, str]:
    """Label -> answer word for the labels found in train (blank ones ignored), in natural order ("2" before
    "10"); each label is answered by its own name with underscores read as spaces ("card_lost" -> "card lost")."""
    import re

    def natural(x: str):
        return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", x) if t]

    found = sorted({str(v) for v in values if v is not None and str(v).strip()}, key=natural)
    return {lab: " ".join(lab.replace("_", " ").split()) for lab in found}


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
        part = df.select(columns)
        # in slices: the same bytes as one CSV of the whole frame, without holding it in memory
        for start in range(0, max(part.height, 1), HASH_SLICE_ROWS):
            h.update(part.slice(start, HASH_SLICE_ROWS).write_csv(include_header=start == 0).encode())
        h.update(b"\x00")
    return h.hexdigest()
