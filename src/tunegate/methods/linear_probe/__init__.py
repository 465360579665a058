"""Linear probe: a linear head on cached frozen features of the prompt.

The settings load with the config; the implementation (``method.py``: torch, peft, ...) is imported when the
method is first used (``methods.get_method``) or one of its names is asked for here (peft's lazy pattern).
"""

from tunegate.methods.base import register_lazy
from tunegate.methods.linear_probe.settings import LinearProbeSettings

register_lazy("linear_probe", LinearProbeSettings, "tunegate.methods.linear_probe.method:LinearProbe")


def __getattr__(name: str):
    from tunegate.methods.base import load_implementation

    module = load_implementation("linear_probe")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = ["LinearProbeSettings"]
