"""QLoRA: LoRA adapters on a 4-bit (NF4) base loaded through bitsandbytes.

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import register_lazy
from tunegate.methods.qlora.settings import QLoraSettings

register_lazy("qlora", QLoraSettings, "tunegate.methods.qlora.method:QLoRA")


def __getattr__(name: str):
    from tunegate.methods.base import load_implementation

    module = load_implementation("qlora")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = ["QLoraSettings"]
