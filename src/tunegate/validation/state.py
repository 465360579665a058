"""What validation knows while its checks run: one :class:`State`, passed from check to check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl

from tunegate.config import TunegateConfig
from tunegate.data import Table, canonical_columns
from tunegate.prompts import PromptBuilder
from tunegate.validation.frames import TrainScan
from tunegate.validation.issues import Issue


@dataclass
class State:
    """What validation knows so far: the config, the files as tables, the index, the rows sampled for the run."""

    cfg: TunegateConfig
    tokenizer: Any
    context: int | None
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    stop: bool = False  # a check found what makes the checks after it meaningless
    tables: dict[str, Table] = field(default_factory=dict)
    index: dict[str, pl.DataFrame] = field(default_factory=dict)  # light columns of every row, per split
    totals: dict[str, int] = field(default_factory=dict)  # rows per split file
    answers: dict[str, str] = field(default_factory=dict)  # label -> answer word
    labels: list[str] | None = None
    train: pl.DataFrame | None = None  # the sampled train index
    train_rows: pl.DataFrame | None = None  # ... of usable rows with a known label
    evl: pl.DataFrame | None = None  # eval rows, read whole
    dev: pl.DataFrame | None = None  # selection rows, read whole
    keep: pl.Expr | None = None  # what makes a row usable
    builder: PromptBuilder | None = None
    per_label: dict[str, int] = field(default_factory=dict)  # answer tokens per label
    scan: TrainScan | None = None
    count: Callable | None = None  # token totals of a frame's rows
    token_totals: dict[str, pl.Series] = field(default_factory=dict)
    resolved_length: int | None = None  # method.max_length 'auto', once the rows' lengths are known

    @property
    def data(self):
        return self.cfg.data

    @property
    def columns(self) -> tuple[str, str]:
        return canonical_columns(self.cfg.task)

    @property
    def has_labels(self) -> bool:
        return self.cfg.task_type.has_labels

    @property
    def conversational(self) -> bool:
        return "conversation_format" in self.stats

    @property
    def max_len(self) -> int:
        """method.max_length, or what its 'auto' resolved to."""
        configured = self.cfg.method.max_length
        return self.resolved_length if configured == "auto" else configured
