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
        width = fields_first = spans = multiline = None
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter=self.separator, **self._csv_options())
            while True:
                start = reader.line_num + 1  # a record's first line: where a quote that never closes opened
                try:
                    fields = next(reader)
                except StopIteration:
                    break
                except csv.Error as exc:
                    return (
                        f"line {start}: {exc} (the record that starts there runs to line {reader.line_num}); fix line "
                        f"{start}: a stray quote, or a quoted text that is not closed"
                    )
                if multiline is None and reader.line_num > start:
                    multiline = (start, reader.line_num)
                if width is None:
                    width = len(fields)
                elif fields and len(fields) != width:
                    bad.append(start)
                    if len(bad) == 1:
                        fields_first, spans = len(fields), (reader.line_num if reader.line_num > start else None)
                    if len(bad) > MAX_NAMED_LINES:
                        break
        if bad:
            opened = f"; a quote opened on line {bad[0]} runs to line {spans}" if spans else ""
            return (
                f"line {bad[0]} has {fields_first} fields, the header {width} (lines {first_lines(bad)}){opened}: "
                f"a ragged row, or a text containing the delimiter {self.separator!r} without quotes; quote such "
                "texts or fix those lines"
            )
        if multiline:  # the file's only oddity: a quoted text over several lines, which polars could not follow
            return (
                f"line {multiline[0]}: a quoted text opens there and runs to line {multiline[1]}; close the quote on "
                f'line {multiline[0]} (a text that really spans lines must double its inner quotes: "")'
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
