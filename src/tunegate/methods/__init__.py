"""Tuning methods, registered by one name used everywhere (config, registry, CLI).

Adding a method = one folder here (peft's layout): ``settings.py`` (its settings class, imports nothing
heavy), ``method.py`` (its ``TuningMethod``) and ``__init__.py`` (``register_lazy("name", Settings,
"module:Class")``), plus its import line below. The settings register at import, so the config validates a
``method:`` section without torch; the implementation is imported when the method is first
used. Nothing outside this package names a method: config, plan, advisor, compare, serving and stages ask the
registry and the method's hooks (``base.TuningMethod``).
"""

from tunegate.methods.base import (
    CHECKPOINTS,
    METHODS,
    AdviceContext,
    MethodEntry,
    MicroBatchOption,
    Rule,
    TrainedArtifact,
    TrainingSet,
    TuningMethod,
    applicable_methods,
    get_method,
    register,
    register_lazy,
    settings_class,
    settings_from_dict,
    unregister,
)
from tunegate.methods.settings import AutoSettings, GradientSettings, MethodSettings, inherited

# each registers its settings (its implementation loads on first use); the order here is the order of
# `tunegate compare`, the advisor's table and the docs
# isort: off
from tunegate.methods import lora, qlora, prompt_tuning, linear_probe  # noqa: F401, E402
# isort: on

DEFAULT_METHOD = "lora"

__all__ = [
    "CHECKPOINTS",
    "METHODS",
    "MethodEntry",
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
    "register_lazy",
    "settings_class",
    "settings_from_dict",
    "unregister",
]
