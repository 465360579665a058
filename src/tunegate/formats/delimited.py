"""CSV and TSV: a header row, one example per line (or ``data.columns`` for a file without a header)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from tunegate.errors import DataReadError
from tunegate.formats.base import MAX_NAMED_LINES, DataFormat, decode, first_lines, is_utf8, register_format


class Delimited(DataFormat):
    """Fields split at ``separator``; TSV is read with quoting off (a quote is an ordinary character)."""

    separator = ","
    quoting = True

    def _csv_options(self) -> dict:
        return {} if self.quoting else {"quoting": csv.QUOTE_NONE}

    def scan(self, path: Path, columns: list[str] | None, encoding: str):
        import polars as pl

        headerless = {"has_header": False, "new_columns": list(columns)} if columns else {}
        options: dict = {} if self.separator == "," else {"separator": self.separator}
        if not self.quoting:
            options["quote_char"] = None
        if is_utf8(encoding):
            return pl.scan_csv(path, infer_schema=False, **options, **headerless)
        text = decode(path, encoding).encode()
        return pl.read_csv(io.BytesIO(text), infer_schema=False, **options, **headerless).lazy()

    def explain(self, path: Path) -> str | None:
        bad: list[int] = []
        width = fields_first = None
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=self.separator, **self._csv_options())
            try:
                for fields in reader:
                    if width is None:
                        width = len(fields)
                    elif fields and len(fields) != width:
                        bad.append(reader.line_num)
                        fields_first = fields_first if len(bad) > 1 else len(fields)
                        if len(bad) > MAX_NAMED_LINES:
                            break
            except csv.Error as exc:
                return f"line {reader.line_num}: {exc}; fix that line (a stray quote or an unclosed quoted text)"
        if bad:
            return (
                f"line {bad[0]} has {fields_first} fields, the header {width} (lines {first_lines(bad)}): "
                f"a ragged row, or a text containing the delimiter {self.separator!r} without quotes; quote such "
                "texts or fix those lines"
            )
        return None

    def check_header(self, path: Path, head: bytes) -> None:
        """A header that names a column twice."""
        first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").lstrip("\ufeff").rstrip("\r")
        try:
            names = next(csv.reader([first], delimiter=self.separator, **self._csv_options()), [])
        except csv.Error:  # a header the csv module cannot split (a bare CR, ...): polars reports the file
            names = []
        seen: set[str] = set()
        for name in names:
            if name in seen and name:
                raise DataReadError(
                    f"{path}: column '{name}' appears twice in the header; rename one (the header is line 1)"
                )
            seen.add(name)


class Csv(Delimited):
    name = "csv"
    suffixes = (".csv",)
    description = "comma-separated, a header row, quoted texts"


class Tsv(Delimited):
    name = "tsv"
    suffixes = (".tsv",)
    description = "tab-separated, a header row, read with quoting off"
    separator = "\t"
    quoting = False


register_format(Csv())
register_format(Tsv())
