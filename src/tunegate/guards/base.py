"""What a guard is, the registry of them, and how a guard's measure is judged.

A guard checks one thing tuning may break (forgetting, a slice, bias, injection, overfitting). It is registered by
its key under ``guards:`` (:func:`register_guard`) with its settings class (light: the config is built from this
registry without importing any implementation) and the import path of its :class:`Guard`, loaded on first use.

Every measure is a mean of per-row values scored on the same rows for the candidate and its reference (the base
model, or the best rung for slices): :func:`judge` gives the paired-bootstrap CI of the difference and checks the
declared tolerance as non-inferiority, the way ``gate.objective: cost`` checks its margin: the end of the CI on
the side of harm must stay within the tolerance. The rows that tolerance needs at the gate's power are reported; a
measure on fewer rows whose CI neither clears the tolerance nor lies wholly past it is called out, not judged: a
too-small probe must not block every candidate.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from pydantic import Field

from tunegate.strict import Strict


class GuardSettings(Strict):
    """What every guard has: whether it runs and whether a failure blocks promotion."""

    block: bool = Field(
        default=True,
        description="A failure stops promotion (false: measured and reported, the decision names it, never blocks).",
    )


@dataclass
class Rows:
    """One measure's per-row values, candidate and reference on the same rows (the evidence in guards.json)."""

    name: str
    unit: str
    higher_is_better: bool
    base: list[float]
    candidate: list[float]
    tolerance: float | None  # None: measured and reported, not judged
    alpha: float | None = None  # None: the gate's alpha (slices: corrected for their number)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Measured:
    """What a guard's ``measure`` returns: its measures' rows, or why it could not measure (``not_measured``)."""

    rows: list[Rows] = field(default_factory=list)
    not_measured: str | None = None
    reference: str = "base model"
    warnings: list[str] = field(default_factory=list)


class Guard:
    """A guard: ``measure(settings, ctx)`` scores the candidate and its reference on the same rows
    (``ctx``: :class:`tunegate.guards.context.GuardContext`) and returns :class:`Measured`."""

    def measure(self, settings: Any, ctx: Any) -> Measured:
        raise NotImplementedError

    def preflight(self, settings: Any, config_dir: Path) -> list[str]:
        """What is wrong with the files ``settings`` names (checked with the data, before any model runs), each
        as one message naming the key, the file and the fix."""
        return []


@dataclass(frozen=True)
class GuardEntry:
    """A registered guard: its key under ``guards:``, settings class, help text and implementation."""

    key: str
    settings: type[GuardSettings]
    description: str
    implementation: str  # "module:Class", imported on first use

    def load(self) -> type[Guard]:
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)


GUARDS: dict[str, GuardEntry] = {}
_listeners: list[Callable[[], None]] = []


def register_guard(key: str, *, settings: type[GuardSettings], description: str, implementation: str) -> GuardEntry:
    """Make ``guards.<key>`` a config key whose settings ``settings`` validates, measured by ``implementation``."""
    GUARDS[key] = entry = GuardEntry(key, settings, description, implementation)
    for listener in _listeners:
        listener()
    return entry


def unregister_guard(key: str) -> None:
    GUARDS.pop(key, None)
    for listener in _listeners:
        listener()


def on_change(listener: Callable[[], None]) -> None:
    """``listener`` is called whenever a guard is registered or removed (the config rebuilds its section)."""
    _listeners.append(listener)


def row_unit(task: str, metric: str) -> str:
    """What a guard's per-row scores of ``metric`` are (:func:`row_scores`)."""
    from tunegate import metrics
    from tunegate.problems import task_type

    if metrics.get(metric).resample is None:
        return metric
    return "minus absolute error" if task_type(task).numeric else "accuracy"


def row_scores(task: str, metric: str, predictions: list, references: list) -> tuple[str, list[float]]:
    """(unit, per-row scores; higher is better) a guard compares: the gate metric when it is a mean over rows; else
    each row's correctness (labels: macro F1 is not a mean) or minus its absolute error (numbers: R2 and RMSE are
    not)."""
    from tunegate import metrics

    unit = row_unit(task, metric)
    if unit == metric:
        return metric, [float(x) for x in metrics.row_scores(metric, predictions, references)]
    if unit == "minus absolute error":

        def number(x) -> float:
            try:
                return float(x)
            except (TypeError, ValueError):
                return float("nan")

        errors = [abs(number(p) - number(r)) for p, r in zip(predictions, references)]
        worst = max((e for e in errors if e == e), default=0.0)  # an unparsed answer counts as the worst error
        return unit, [-(e if e == e else worst) for e in errors]
    return "accuracy", [float(x) for x in metrics.row_scores("accuracy", predictions, references)]
