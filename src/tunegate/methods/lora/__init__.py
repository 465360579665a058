"""LoRA: low-rank adapters in the linear layers of a frozen base (peft).

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import implementation_getattr, register_lazy
from tunegate.methods.lora.settings import LoraSettings

register_lazy("lora", LoraSettings, "tunegate.methods.lora.method:LoRA")

__getattr__ = implementation_getattr("lora", __name__)

__all__ = ["LoraSettings"]
