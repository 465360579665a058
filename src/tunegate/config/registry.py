"""The ``registry:`` section: where versions are registered and how closely a re-score must reproduce."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tunegate.registry import MODEL_NAME_MAX, MODEL_NAME_PATTERN
from tunegate.strict import Strict as _Strict


class RegistryConfig(_Strict):
    """Where versions are registered, under which name, and how closely a re-score must reproduce."""

    path: Path = Field(default=Path("registry"), description="Registry root (relative to the working directory).")
    model_name: str = Field(
        default="tunegate-model",
        pattern=MODEL_NAME_PATTERN,
        max_length=MODEL_NAME_MAX,
        description=f"Name under which versions are registered (letters, digits, . _ -; at most {MODEL_NAME_MAX}).",
    )
    reproduce_tolerance: float = Field(
        default=0.005,
        ge=0.0,
        description="Before `production` moves, the registered copy is loaded back from the registry and scored again "
        "on the same eval rows; promotion fails if its gate metric differs from the run's by more than this "
        "(absolute). Scoring is deterministic on one machine, so any real difference means the saved artifact is "
        "not the model that was judged.",
    )
    reproduce_agreement: float = Field(
        default=0.9,
        ge=0.0,
        le=1.0,
        description="...and if fewer than this share of the eval rows get the same prediction as in the run. The "
        "metric alone can hide a broken copy (swapped labels on a balanced set score the same accuracy); the re-score "
        "runs in the run's precision, so a faithful copy agrees on (nearly) every row.",
    )
