"""Prompt tuning: a trainable soft prompt before the input of a frozen base (peft).

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import register_lazy
from tunegate.methods.prompt_tuning.settings import PromptTuningSettings

register_lazy("prompt_tuning", PromptTuningSettings, "tunegate.methods.prompt_tuning.method:PromptTuning")


def __getattr__(name: str):
    from tunegate.methods.base import load_implementation

    module = load_implementation("prompt_tuning")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = ["PromptTuningSettings"]
