"""The ``overfitting`` guard: registered here with its settings; the implementation (``guard.py``) is imported when a
run measures it."""

from tunegate.guards.base import register_guard
from tunegate.guards.overfitting.settings import OverfittingSettings

register_guard(
    "overfitting",
    settings=OverfittingSettings,
    description="The train vs selection loss gap during training, and (generation) eval outputs that copy a train "
    "answer verbatim, vs the retrieved few-shot rung.",
    implementation="tunegate.guards.overfitting.guard:Overfitting",
)
