"""The ``serve:`` section: what ``tunegate serve`` logs about live traffic and when it rolls production back.

``tunegate serve`` reads it from the config recorded with the version it serves (the run that registered it);
``--config`` and the flags override it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from tunegate.strict import Strict as _Strict


class RollbackIf(_Strict):
    """A live regression of the champion, declared before it is seen: measured on the requests that got feedback,
    with a confidence sequence (valid however often it is checked) so that checking after every feedback does not
    inflate false alarms."""

    below: float | None = Field(
        default=None,
        description="Roll back when the live accuracy (or, for generation, the mean of the gate metric) is below "
        "this with confidence (the confidence sequence's upper end is below it).",
    )
    drop: float | None = Field(
        default=None,
        gt=0.0,
        description="...or when it is below the version's own eval metric (recorded in the registry) minus this, "
        "with confidence.",
    )
    min_feedback: int = Field(default=30, ge=5, description="Never decide on fewer requests with feedback.")
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5, description="Error rate of the always-valid test.")

    @model_validator(mode="after")
    def _one_rule(self):
        if (self.below is None) == (self.drop is None):
            raise ValueError(
                "serve.rollback_if: give exactly one of `below` (a level) or `drop` (from the eval metric)"
            )
        return self


class ServeConfig(_Strict):
    """What ``tunegate serve`` records about live traffic, and the regression that rolls production back."""

    log: bool = Field(default=True, description="Log every request (ids, answers, latency) beside the registry.")
    log_inputs: bool = Field(
        default=True,
        description="Keep each request's text in the log (needed for token drift and for replaying traffic); "
        "false keeps only its length and a hash.",
    )
    log_dir: Path | None = Field(
        default=None, description="Where the request log goes (default: <registry>/_traffic/<model name>/)."
    )
    log_rotate_mb: float = Field(
        default=64.0, gt=0.0, description="Start a new log file when the current one reaches this size."
    )
    rollback_if: RollbackIf | None = Field(
        default=None,
        description="A live regression of production that rolls it back automatically (audited as such), e.g. "
        "{below: 0.8} or {drop: 0.05, min_feedback: 50}. Unset: never automatically.",
    )
    drift_threshold: float = Field(
        default=0.1,
        gt=0.0,
        le=1.0,
        description="Token drift score above which `shadow report` flags drift and the retrain-on-drift deployment "
        "retrains: the Jensen-Shannon divergence (bits, 0-1) between the served inputs' words and the eval rows', "
        "minus what random halves of the two differ by. SST-2 reviews served to an SST-2 model score about 0.0-0.02, "
        "SMS messages or TREC questions 0.2-0.26.",
    )
