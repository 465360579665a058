"""Linear probe: a linear head on cached frozen features of the prompt.

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import implementation_getattr, register_lazy
from tunegate.methods.linear_probe.settings import LinearProbeSettings

register_lazy("linear_probe", LinearProbeSettings, "tunegate.methods.linear_probe.method:LinearProbe")

__getattr__ = implementation_getattr("linear_probe", __name__)

__all__ = ["LinearProbeSettings"]
