"""Parquet files (and Hugging Face ``datasets``' class-label columns in them, as their names)."""

from __future__ import annotations

import json
from pathlib import Path

from tunegate.formats.base import DataFormat, register_format


def hf_features(path: Path) -> dict | None:
    """The ``features`` that Hugging Face ``datasets`` wrote into a Parquet file's metadata (its footer only)."""
    try:
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[b"huggingface"]).get("info", {}).get("features") if b"huggingface" in meta else None
    except Exception:  # noqa: BLE001 - metadata is a nicety; the data is read without it
        return None


def class_label_names(df, features: dict | None):
    """Hugging Face ``ClassLabel`` columns (stored as integers) as their names (a frame or a lazy frame)."""
    import polars as pl

    names = df.collect_schema().names()
    for col, feat in (features or {}).items():
        if isinstance(feat, dict) and feat.get("_type") == "ClassLabel" and col in names:
            mapping = dict(enumerate(feat.get("names") or []))
            # a value without a name stays visible as such (not a missing label): validation names it and its rows
            outside = pl.format(f"<ClassLabel value {{}}: not one of the {len(mapping)} names>", pl.col(col))
            df = df.with_columns(pl.col(col).replace_strict(mapping, default=outside, return_dtype=pl.Utf8))
    return df


def read_parquet(path: Path):
    """A whole Parquet file as a frame, class-label columns as their names."""
    import polars as pl

    return class_label_names(pl.read_parquet(path), hf_features(path))


class Parquet(DataFormat):
    name = "parquet"
    suffixes = (".parquet", ".pq")
    description = "a Parquet file (class-label columns written by Hugging Face datasets are read as their names)"
    text = False

    def scan(self, path: Path, columns: list[str] | None, encoding: str):
        import polars as pl

        return class_label_names(pl.scan_parquet(path), hf_features(path))


register_format(Parquet())
