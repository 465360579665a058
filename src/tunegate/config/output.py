"""The ``output:`` section: where run folders go."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from tunegate.strict import Strict as _Strict


class OutputConfig(_Strict):
    """Where run folders go."""

    dir: Path = Field(
        default=Path("runs"), description="Runs go to <dir>/<run-id>/ (relative to the working directory)."
    )
