"""The ``bias`` guard: registered here with its settings; the implementation (``guard.py``) is imported when a
run measures it."""

from tunegate.guards.base import register_guard
from tunegate.guards.bias.settings import BiasSettings

register_guard(
    "bias",
    settings=BiasSettings,
    description="Inherited bias: counterfactual flips (swapped pronouns, names, nationalities) and stereotype "
    "preference (CrowS-Pairs, user pairs), candidate vs the base model.",
    implementation="tunegate.guards.bias.guard:Bias",
)
