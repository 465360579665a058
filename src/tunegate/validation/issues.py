"""What validation reports: one :class:`Issue` per failed or warned check, and the outcome of all of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

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


def policy_issue(policy: str, check: str, message: str, split_name: str, rows: list[int], fix: str) -> Issue:
    severity = "error" if policy == "error" else "warning"
    suffix = f"; {fix}" if policy == "error" else (" (dropped)" if policy == "drop" else "")
    return Issue(check=check, severity=severity, split=split_name, message=message + suffix, rows=rows)
