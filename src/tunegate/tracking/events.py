"""The built-in backend ``events``: every stage's result and every training step as JSON lines in the run folder.

``tail -f runs/<id>/events.jsonl`` follows a run live; a notebook reads the loss curve or the rungs' metrics
from it without parsing reports. Predictions are left out (they are in ``predictions/``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tunegate.strict import Strict
from tunegate.tracking.base import Tracker


class EventsSettings(Strict):
    """``tracking.events``: the run's events as JSON lines."""

    file: str = Field(default="events.jsonl", description="File name in the run folder.")


def summary(value: Any) -> Any:
    """A record as JSON, its per-row predictions left out."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: summary(v) for k, v in value.items() if k != "predictions"}
    if isinstance(value, (list, tuple)):
        return [summary(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


class Events(Tracker):
    def _append(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": round(time.time(), 3), **event}, default=str)
        with open(Path(self.run.run_dir) / self.settings.file, "a") as f:
            f.write(line + "\n")

    def log_stage(self, stage: str, result: Any) -> None:
        self._append({"event": "stage", "stage": stage, "result": summary(result)})

    def log_step(self, method: str, step: int, values: dict[str, float]) -> None:
        self._append({"event": "step", "method": method, "step": step, **values})
