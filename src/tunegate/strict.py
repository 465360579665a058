"""The base of every config section: unknown keys are errors, assignments are validated."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A config section: extra keys are rejected (a typo must never be silently ignored)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
