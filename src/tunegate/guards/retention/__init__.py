"""The ``retention`` guard: registered here with its settings; the implementation (``guard.py``) is imported when a
run measures it."""

from tunegate.guards.base import register_guard
from tunegate.guards.retention.settings import RetentionSettings

register_guard(
    "retention",
    settings=RetentionSettings,
    description="Forgetting: the candidate vs the base model on shipped general probes (PIQA), other datasets "
    "and KL divergence on neutral text.",
    implementation="tunegate.guards.retention.guard:Retention",
)
