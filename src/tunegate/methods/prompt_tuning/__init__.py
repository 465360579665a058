"""Prompt tuning: a trainable soft prompt before the input of a frozen base (peft).

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import implementation_getattr, register_lazy
from tunegate.methods.prompt_tuning.settings import PromptTuningSettings

register_lazy("prompt_tuning", PromptTuningSettings, "tunegate.methods.prompt_tuning.method:PromptTuning")

__getattr__ = implementation_getattr("prompt_tuning", __name__)

__all__ = ["PromptTuningSettings"]
