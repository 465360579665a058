"""Tuning methods, registered by one name used everywhere (config, registry, CLI).

Adding a method = one module here holding its settings class and its method class
(``@register("name", Settings)``), plus its import line below. Nothing outside this
package names a method: config, plan, advisor, compare, serving and stages ask the
registry and the method's hooks (``base.TuningMethod``).
"""

from tunegate.methods.base import (
    CHECKPOINTS,
    METHODS,
    AdviceContext,
    MicroBatchOption,
    Rule,
    TrainedArtifact,
    TrainingSet,
    TuningMethod,
    applicable_methods,
    get_method,
    register,
    settings_class,
    settings_from_dict,
    unregister,
)
from tunegate.methods.settings import AutoSettings, GradientSettings, MethodSettings, inherited

# each registers itself; the order here is the order of `tunegate compare`, the advisor's table and the docs
# isort: off
from tunegate.methods import lora, qlora, prompt_tuning, linear_probe  # noqa: F401, E402
# isort: on

DEFAULT_METHOD = "lora"

__all__ = [
    "CHECKPOINTS",
    "METHODS",
    "AdviceContext",
    "AutoSettings",
    "DEFAULT_METHOD",
    "GradientSettings",
    "MethodSettings",
    "MicroBatchOption",
    "Rule",
    "TrainedArtifact",
    "TrainingSet",
    "TuningMethod",
    "applicable_methods",
    "get_method",
    "inherited",
    "register",
    "settings_class",
    "settings_from_dict",
    "unregister",
]
