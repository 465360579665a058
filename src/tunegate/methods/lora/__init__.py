"""LoRA: low-rank adapters in the linear layers of a frozen base (peft).

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import register_lazy
from tunegate.methods.lora.settings import LoraSettings

register_lazy("lora", LoraSettings, "tunegate.methods.lora.method:LoRA")


def __getattr__(name: str):
    from tunegate.methods.base import load_implementation

    module = load_implementation("lora")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = ["LoraSettings"]
