"""The ``guards:`` section: what tuning may break, checked beside the gate and declared before the run like it.

Its keys come from the guards registry (``tunegate.guards``): each registered guard brings its settings class.
Every guard is on by default with its defaults; ``<guard>: false`` turns one off, ``guards: false`` all of them.
The section's class is built from the registry (:func:`guards_class`) and rebuilt when a guard is registered, so a
new guard is a config key at once.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from tunegate.config.sections import RegistrySection, on_off
from tunegate.guards import GUARDS
from tunegate.guards.base import on_change
from tunegate.strict import Strict as _Strict


class GuardsConfig(_Strict):
    """What tuning may break, each checked base (or best rung) vs candidate on the same rows: forgetting, slices,
    inherited bias, injection, overfitting. A failed guard with `block: true` stops promotion; every guard's
    result is one sentence of the decision. Each CI is at the gate's alpha, and the report says how many rows a
    tolerance needs at the gate's power."""


def _guard_field(entry) -> tuple:
    """A guard's key under ``guards:``: its settings, on by default; ``false`` turns it off."""
    return (
        Annotated[entry.settings | None, BeforeValidator(on_off)],
        Field(default_factory=entry.settings, description=entry.description + " On by default; `false` turns it off."),
    )


def _all_or_none(value: Any) -> Any:
    """``guards: false`` turns every guard off, ``guards: true`` keeps the defaults."""
    if value is False:
        return {key: None for key in GUARDS}
    return {} if value is True else value


_SECTION = RegistrySection(GuardsConfig, GUARDS, _guard_field)
guards_class = _SECTION.cls  # the section's class for the guards registered now
# the root's `guards:` field: validated by the class of the guards registered at validation time
AnyGuards = Annotated[_SECTION.field_type(), BeforeValidator(_all_or_none)]
default_guards = _SECTION.default
on_change(_SECTION.clear)
