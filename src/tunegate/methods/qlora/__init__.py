"""QLoRA: LoRA adapters on a 4-bit (NF4) base loaded through bitsandbytes.

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import implementation_getattr, register_lazy
from tunegate.methods.qlora.settings import QLoraSettings

register_lazy("qlora", QLoraSettings, "tunegate.methods.qlora.method:QLoRA")

__getattr__ = implementation_getattr("qlora", __name__)

__all__ = ["QLoraSettings"]
