"""Reading data files into canonical polars frames, sampling, splitting and hashing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tunegate.config import DataConfig
from tunegate.errors import DataReadError
from tunegate.formats import FORMATS, format_of, is_conversation
from tunegate.formats.parquet import class_label_names, read_parquet
from tunegate.problems import task_type

ROW = "_row"
# what counts as "the same text" wherever texts are matched (duplicates, conflicting labels, train/eval leakage,
# the retrieval guard): case, spacing and punctuation do not matter
_NOT_WORD = r"[^\w\s]|_"


def same_text_expr(column: str) -> pl.Expr:
    """A text as the overlap checks compare it: lower case, punctuation as spaces, whitespace collapsed."""
    return (
        pl.col(column)
        .str.to_lowercase()
        .str.replace_all(_NOT_WORD, " ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars(" ")
    )


def same_texts(texts: list[str]) -> list[str]:
    """:func:`same_text_expr` of each of ``texts`` (the one implementation, for Python callers)."""
    return pl.DataFrame({"t": texts}, schema={"t": pl.Utf8}).select(same_text_expr("t")).to_series().to_list()


HASH_SLICE_ROWS = 100_000  # 1-based row number in the source file, kept through sampling for reports


def canonical_columns(task: str) -> tuple[str, str]:
    """The normalized data's (input, reference) columns for a task type."""
    return task_type(task).columns


def source_columns(task: str, data: DataConfig) -> tuple[str, str]:
    """The file's (input, reference) columns, as the data settings name them for a task type."""
    return task_type(task).source_columns(data)


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
        frames = []
        for shard in [path / f["filename"] for f in state.get("_data_files", [])]:
            try:
                frames.append(pl.read_ipc_stream(shard))
            except Exception as exc:  # noqa: BLE001 - a damaged shard: say which, and what that usually means
                size = f"{shard.stat().st_size:,} bytes" if shard.is_file() else "missing"
                raise DataReadError(
                    f"{shard}: this Arrow shard of a Hugging Face dataset folder is truncated or damaged ({size}; "
                    f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); save or copy the dataset again"
                ) from None
        df = pl.concat(frames, how="vertical_relaxed")
        info = path / "dataset_info.json"
        return class_label_names(df, json.loads(info.read_text()).get("features") if info.is_file() else None)
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise DataReadError(
            f"{path}: a folder with neither a saved Hugging Face dataset (state.json) nor Parquet files; point "
            "data.train / data.eval at a data file or such a folder"
        )
    return pl.concat([read_parquet(f) for f in files], how="vertical_relaxed")


def _as_text(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Every column as text: scalars cast, nested values (lists, structs) as JSON (lazily: only the columns a
    query keeps are converted)."""
    out = []
    for c, dtype in lf.collect_schema().items():
        if dtype == pl.Utf8:
            continue
        if dtype.is_nested():
            out.append(
                pl.col(c).map_elements(
                    lambda v: json.dumps(
                        v if not isinstance(v, pl.Series) else v.to_list(), ensure_ascii=False, default=str
                    ),
                    return_dtype=pl.Utf8,
                    skip_nulls=True,
                )
            )
        else:
            out.append(pl.col(c).cast(pl.Utf8, strict=False))
    return lf.with_columns(out) if out else lf


@dataclass
class Table:
    """A data source read lazily (polars scanning: a query reads only the columns and rows it needs), every
    column as text, ``_row`` the 1-based row number in the file. :meth:`collect` turns a malformed file into a
    DataReadError naming it."""

    path: Path
    kind: str
    lazy: pl.LazyFrame
    header: list[str] | None = None  # the file's own column names, before the configured ones were renamed

    def collect(self, query: pl.LazyFrame | None = None) -> pl.DataFrame:
        try:
            return (self.lazy if query is None else query).collect(engine="streaming")
        except Exception as exc:  # noqa: BLE001 - polars raises several types for malformed files
            raise unreadable(self.path, self.kind, exc) from None

    def batches(self, query: pl.LazyFrame, size: int):
        """The rows of ``query`` in batches of about ``size`` rows, streamed from the source, in order."""
        try:
            yield from query.collect_batches(chunk_size=size, maintain_order=True)
        except Exception as exc:  # noqa: BLE001 - polars raises several types for malformed files
            raise unreadable(self.path, self.kind, exc) from None

    def columns(self) -> list[str]:
        try:
            return self.lazy.collect_schema().names()
        except Exception as exc:  # noqa: BLE001 - a header polars cannot parse
            raise unreadable(self.path, self.kind, exc) from None


_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed (decompress it first)"),
    (b"PK\x03\x04", "a zip archive (extract the data file from it)"),
    (b"PAR1", "a Parquet file (name it .parquet or set data.format: parquet)"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
)


def _not_utf8(path: Path) -> str | None:
    for n, raw in enumerate(open(path, "rb"), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return (
                f"line {n} is not UTF-8 (byte {raw[exc.start]:#04x} at column {exc.start + 1}); set data.encoding to "
                "the file's encoding (e.g. latin-1 or cp1252) or re-save it as UTF-8"
            )
    return None


def unreadable(path: Path, kind: str, exc: BaseException | None = None) -> DataReadError:
    """Why ``path`` cannot be read, in the user's terms (the line and what is wrong with it) where the file can be
    scanned for it; polars' own first line otherwise."""
    reason = None
    fmt = FORMATS.get(kind)
    try:
        if fmt is not None and fmt.text and Path(path).is_file():
            reason = _not_utf8(path) or fmt.explain(path)
    except OSError:
        reason = None
    if reason is None:
        text = str(exc).strip() if exc is not None else ""
        reason = text.splitlines()[0] if text else (type(exc).__name__ if exc is not None else "unknown")
        reason = f"could not be read as {kind} ({reason})"
    return DataReadError(f"{path}: {reason}")


def sniff(path: Path, kind: str, encoding: str = "utf-8") -> None:
    """Raise DataReadError for a file that is not text of the expected kind at all (an archive, another format, a
    UTF-16 file read as UTF-8, NUL bytes), and for a header the format refuses (a CSV column named twice)."""
    fmt = FORMATS[kind]
    if not fmt.text:
        return
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    for bom, enc in _BOMS:
        if head.startswith(bom) and utf8:
            raise DataReadError(
                f"{path}: the file is {enc.upper()} (it starts with a {enc} byte-order mark); set data.encoding: {enc} "
                "or re-save it as UTF-8"
            )
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise DataReadError(f"{path}: this is {what}, not a {kind.upper()} text file")
    if b"\x00" in head and utf8:
        line = head[: head.index(b"\x00")].count(b"\n") + 1
        raise DataReadError(
            f"{path}: line {line} contains NUL bytes: not a {kind.upper()} text file (binary data, or UTF-16 without a "
            "byte-order mark); export it as UTF-8 text"
        )
    if utf8:
        fmt.check_header(path, head)


def scan_table(path: Path, fmt: str = "auto", columns: list[str] | None = None, encoding: str = "utf-8") -> Table:
    """A data file (or a dataset folder, :func:`read_folder`) as a lazy :class:`Table`; raise DataReadError with a
    readable reason for what can be told without reading the rows (the rows' own problems surface on collect).

    ``columns``: names for a CSV/TSV file without a header row (its first line is data). CSV, TSV, JSONL and
    Parquet files in UTF-8 are scanned; folders, 'lines' files and other encodings are read whole first.
    """
    if not path.exists():
        raise DataReadError(f"{path}: file not found. Check data.train / data.eval (relative to the config file)")
    if path.is_dir():
        df = read_folder(path)
        if df.width == 0 or df.height == 0:
            raise DataReadError(f"{path}: no rows found")
        return Table(path, "dataset folder", _as_text(df.lazy()).with_row_index(ROW, offset=1))
    reader = format_of(path, fmt)
    kind = reader.name
    if not path.is_file():
        raise DataReadError(f"{path}: not a regular file; point data.train / data.eval at a data file or folder")
    if path.stat().st_size == 0:
        raise DataReadError(f"{path}: no rows found (an empty file)")
    sniff(path, kind, encoding)
    try:
        lf = reader.scan(path, columns, encoding)
        table = Table(path, kind, lf)
        if not table.columns():
            raise DataReadError(f"{path}: no rows found (an empty file, or not {kind})")
    except DataReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - polars raises several types for malformed files
        raise unreadable(path, kind, exc) from None
    if ROW in table.columns():  # the format numbers its rows itself (lines: blank lines skipped)
        return table
    return Table(path, kind, _as_text(lf).with_row_index(ROW, offset=1))


def read_table(
    path: Path, fmt: str = "auto", columns: list[str] | None = None, encoding: str = "utf-8"
) -> pl.DataFrame:
    """A whole data file (:func:`scan_table`) as a frame; raise DataReadError with a readable reason."""
    table = scan_table(path, fmt, columns, encoding)
    df = table.collect()
    if df.height == 0:
        raise DataReadError(f"{path}: no rows found (an empty file, or not {table.kind})")
    return df


def conversation_format(path: Path, fmt: str) -> str | None:
    """'messages' / 'sharegpt' / 'alpaca' when ``path`` holds conversations (declared, or, for 'auto', a .jsonl
    file whose first record is one), else None."""
    from tunegate.conversations import detect_format

    if is_conversation(fmt):
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


def to_canonical(df, task: str, data: DataConfig):
    """Rename the configured columns to the canonical names; missing ones are left for the schema to report.

    ``data.label_pattern``: the label is its first group (no match: null, reported by the schema as a missing
    label)."""
    src = source_columns(task, data)
    dst = canonical_columns(task)
    names = df.collect_schema().names()
    for s, d in zip(src, dst):
        if s != d and d in names:
            # a column that merely shares the canonical name is not the configured one
            df = df.drop(d)
    df = df.rename({s: d for s, d in zip(src, dst) if s in names and s != d})
    if data.label_pattern and task_type(task).has_labels and "label" in df.collect_schema().names():
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
        update_hash(h, df, columns)
    return h.hexdigest()


def update_hash(h, df: pl.DataFrame, columns: tuple[str, ...], header: bool = True, end: bool = True) -> None:
    """Feed ``df``'s ``columns`` to the hasher ``h`` as CSV, in slices (the same bytes as one CSV of the whole
    frame, without holding it in memory). A frame streamed in batches: ``header`` on the first only, ``end`` (the
    frame separator) after the last only."""
    part = df.select(columns)
    for start in range(0, max(part.height, 1), HASH_SLICE_ROWS):
        h.update(part.slice(start, HASH_SLICE_ROWS).write_csv(include_header=header and start == 0).encode())
    if end:
        h.update(b"\x00")
