"""The ``gate:`` section: the promotion rule, declared before the run."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tunegate import metrics
from tunegate.problems import TASK_TYPES
from tunegate.strict import Strict as _Strict

_UNIT_MONTHS = {"day": 1 / 30.4375, "week": 7 / 30.4375, "month": 1.0, "year": 12.0}


def months_of(text: str) -> float:
    """'30 days', '8 weeks', '6 months', '1 year', '2.5' (months) -> months."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*?)s?\s*", str(text).lower())
    unit = (m.group(2) or "month") if m else None
    if m is None or unit not in _UNIT_MONTHS or float(m.group(1)) <= 0:
        raise ValueError(
            f"{text!r} is not a duration; write a positive number and a unit, e.g. '30 days', '8 weeks', '6 months' "
            "or '1 year'"
        )
    return float(m.group(1)) * _UNIT_MONTHS[unit]


class GateConfig(_Strict):
    """The promotion gate, declared before the run and recorded with the decision."""

    metric: str | None = Field(
        default=None,
        description="Gate metric (higher is better). Default and choices per task: "
        + "; ".join(
            f"{task}: {metrics.default_metric(task)} (or "
            f"{', '.join(m for m in metrics.gate_metrics(task) if m != metrics.default_metric(task)) or 'none other'})"
            for task in TASK_TYPES
        )
        + ". "
        + " ".join(f"{s.name}: {s.description}." for s in metrics.specs().values() if s.gate),
    )
    min_gain: float = Field(
        default=0.0,
        ge=-1.0,
        le=1.0,
        description="Promote only if the lower end of the CI of (tuned - best baseline) exceeds this.",
    )
    alpha: float = Field(
        default=0.05,
        gt=0.0,
        lt=0.5,
        description="Significance level: the paired bootstrap CI is at 1 - alpha, McNemar's p must be below it, "
        "and the minimum detectable difference is computed at it.",
    )
    mcnemar: bool = Field(
        default=True,
        description="Accuracy only: also require McNemar's exact test (two-sided, on the rows exactly one side gets "
        "right) to reject 'equally accurate' at alpha. Applies when min_gain >= 0.",
    )
    must_beat_production: bool = Field(
        default=True,
        description="Also require the same win over the current production model of registry.model_name, scored on "
        "the same eval rows (when one exists and answers the same task and labels).",
    )
    power: float = Field(
        default=0.8,
        gt=0.5,
        lt=1.0,
        description="Power for the minimum detectable difference reported with the decision (small eval sets are "
        "flagged).",
    )
    bootstrap_samples: int = Field(default=2000, ge=100, le=100000, description="Paired bootstrap resamples.")
    seed: int = Field(default=0, description="Seed of the bootstrap.")
    seeds: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Train the chosen method this many times with seeds method.seed, +1, ...: the decision reports "
        "each seed's difference with its CI, the spread and the share of seeds that pass; the version promoted is "
        "the seed that scores best on the selection split (data.dev / dev_fraction), judged on the eval rows. "
        "Without a selection split it is chosen on the eval rows and its CI is widened for the choice "
        "(Bonferroni: alpha / seeds). Training cost counts every seed.",
    )
    objective: Literal["quality", "cost"] = Field(
        default="quality",
        description="What a win means. 'quality': the candidate must be better (the lower end of the CI of tuned - "
        "opponent above min_gain; McNemar for accuracy). 'cost': it must be as good within non_inferiority_margin "
        "(the CI's lower end above -margin) against the best baseline and production, cheaper per request than the "
        "best baseline by at least min_saving, with its one-off cost paid back within payback_within at "
        "costs.requests_per_month, and (when set) under max_latency_ms.",
    )
    non_inferiority_margin: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="objective cost: the largest loss of the gate metric accepted for a cheaper model (the CI's "
        "lower end of tuned - opponent must exceed -margin).",
    )
    payback_within: str = Field(
        default="6 months",
        description="objective cost: the candidate's extra one-off cost (training) must be paid back by its cheaper "
        "requests within this time at costs.requests_per_month: '30 days', '8 weeks', '6 months', '1 year' (or a "
        "number of months).",
    )
    min_saving: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="objective cost: cheaper per request means at least this share below the best baseline's cost "
        "(measured latencies vary by a few percent between identical runs; an equally cheap model is never "
        "promoted on cost).",
    )
    max_latency_ms: float | None = Field(
        default=None,
        gt=0,
        description="objective cost: the candidate's 95th-percentile latency per request (the wall time of the "
        "batch that answered it, plus retrieval) must not exceed this.",
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str | None) -> str | None:
        gateable = [n for n, s in metrics.specs().items() if s.gate]
        if v is not None and v not in gateable:
            close = difflib.get_close_matches(v, gateable, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {gateable}"
            lower = " (lower is better: it is reported, not gated on)" if v in metrics.specs() else ""
            raise ValueError(f"'{v}' is not a gate metric{lower}; {hint}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, v: Any) -> Any:
        if isinstance(v, dict) and "confidence" in v:
            raise ValueError(
                "gate.confidence was replaced by gate.alpha (= 1 - confidence); write alpha: "
                f"{1 - float(v['confidence']):.3g}"
            )
        return v

    @field_validator("payback_within", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = f"{v:g} months"
        if isinstance(v, str):
            months_of(v)  # raises with what to write
        return v

    @property
    def payback_months(self) -> float:
        return months_of(self.payback_within)

    @property
    def confidence(self) -> float:
        return 1.0 - self.alpha
