"""The ``slices`` guard: registered here with its settings; the implementation (``guard.py``) is imported when a
run measures it."""

from tunegate.guards.base import register_guard
from tunegate.guards.slices.settings import SlicesSettings

register_guard(
    "slices",
    settings=SlicesSettings,
    description="The gate metric per label, input-length quartile and data.slice_columns value, candidate vs the "
    "best rung (CIs corrected for the number of slices).",
    implementation="tunegate.guards.slices.guard:Slices",
)
