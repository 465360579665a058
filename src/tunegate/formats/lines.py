"""'lines': one example per line, split at the first whitespace (TREC's and fastText's files)."""

from __future__ import annotations

from pathlib import Path

from tunegate.errors import DataReadError
from tunegate.formats.base import DataFormat, decode, register_format

ROW = "_row"


class Lines(DataFormat):
    name = "lines"
    suffixes = (".label",)
    description = (
        "one example per line, split at the first whitespace into two columns (data.columns, default [label, "
        "text]), as TREC's 'COARSE:fine question' files and fastText-style '__label__x text' files; blank lines "
        "are skipped"
    )

    def scan(self, path: Path, columns: list[str] | None, encoding: str):
        """Read whole; ``_row`` is the line number (blank lines skipped)."""
        import polars as pl

        names = list(columns) if columns else ["label", "text"]
        if len(names) != 2:
            raise DataReadError(f"{path}: a 'lines' file has two columns; data.columns names {len(names)}")
        lines, first, rest = [], [], []
        for n, line in enumerate(decode(path, encoding).splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split(None, 1)
            lines.append(n)
            first.append(parts[0])
            rest.append(parts[1] if len(parts) > 1 else "")
        if not lines:
            raise DataReadError(f"{path}: no rows found (an empty file)")
        return pl.DataFrame({ROW: pl.Series(lines, dtype=pl.UInt32), names[0]: first, names[1]: rest}).lazy()


register_format(Lines())
