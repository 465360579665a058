"""The ``tracking:`` section: the tracking backends a run also logs to, each with its settings.

Its keys come from the tracking registry (``tunegate.tracking``): each registered backend brings its settings
class. The section's class is built from the registry (:func:`tracking_class`) and rebuilt when a backend is
registered, so a new backend is a config key at once. A backend is off unless its key is set (``events: {}`` or
``events: true`` turns it on with its defaults).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from tunegate.config.sections import RegistrySection, on_off
from tunegate.strict import Strict as _Strict
from tunegate.tracking import TRACKERS
from tunegate.tracking.base import on_change


class TrackingConfig(_Strict):
    """Where the run's stages and training steps also go. Every backend is off unless its key is set."""


def _backend_field(entry) -> tuple:
    """A backend's key under ``tracking:``: its settings or nothing (off), ``true`` for its defaults."""
    return (
        Annotated[entry.settings | None, BeforeValidator(on_off)],
        Field(default=None, description=entry.description + " Off unless set (`true` or `{}`: defaults)."),
    )


_SECTION = RegistrySection(TrackingConfig, TRACKERS, _backend_field)
tracking_class = _SECTION.cls  # the section's class for the backends registered now
# the root's `tracking:` field: validated by the class of the backends registered at validation time
AnyTracking = _SECTION.field_type()
default_tracking = _SECTION.default
on_change(_SECTION.clear)
