"""JSON Lines: one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path

from tunegate.formats.base import MAX_NAMED_LINES, DataFormat, first_lines, register_format


class JsonLines(DataFormat):
    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")
    description = "one JSON object per line (nested values are read as JSON text)"

    def scan(self, path: Path, columns: list[str] | None, encoding: str):
        import polars as pl

        return pl.scan_ndjson(path)

    def explain(self, path: Path) -> str | None:
        bad: list[tuple[int, str]] = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError as exc:
                    bad.append((n, f"is not valid JSON ({exc.msg} at column {exc.colno})"))
                else:
                    if not isinstance(value, dict):
                        bad.append((n, f"is a JSON {type(value).__name__}, not an object"))
                if len(bad) > MAX_NAMED_LINES:
                    break
        if bad:
            n, why = bad[0]
            return f"line {n} {why} (bad lines: {first_lines([b[0] for b in bad])}); each line must be one JSON object"
        return None


register_format(JsonLines())
