"""Tuning methods, registered by one name used everywhere (config, registry, CLI).

Adding a method = one module here with a class decorated ``@register("name")``, one
import line below, one row in the parametrized tests.
"""

from tunegate.methods.base import METHODS, TrainedArtifact, TuningMethod, get_method, register
from tunegate.methods import lora, qlora  # noqa: F401  (registers "lora", "qlora")

__all__ = ["METHODS", "TrainedArtifact", "TuningMethod", "get_method", "register"]
