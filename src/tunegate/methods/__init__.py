"""Tuning methods, registered by one name used everywhere (config, registry, CLI).

Adding a method = one module here with a class decorated ``@register("name")``, one
import line below, one row in the parametrized tests.
"""

from tunegate.methods.base import METHODS, TrainedArtifact, TrainingSet, TuningMethod, get_method, register
from tunegate.methods import lora, qlora, prompt_tuning, linear_probe  # noqa: F401  (each registers itself)

__all__ = ["METHODS", "TrainedArtifact", "TrainingSet", "TuningMethod", "get_method", "register"]
