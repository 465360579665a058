"""The ``tracking:`` section: the tracking backends a run also logs to, each with its settings.

Its keys come from the tracking registry (``tunegate.tracking``): each registered backend brings its settings
class. The section's class is built from the registry (:func:`tracking_class`) and rebuilt when a backend is
registered, so a new backend is a config key at once. A backend is off unless its key is set (``events: {}`` or
``events: true`` turns it on with its defaults).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SerializeAsAny, create_model

from tunegate.strict import Strict as _Strict
from tunegate.tracking import TRACKERS
from tunegate.tracking.base import on_change


class TrackingConfig(_Strict):
    """Where the run's stages and training steps also go. Every backend is off unless its key is set."""


def _on_off(value: Any) -> Any:
    """``true`` turns a backend on with its defaults, ``false`` leaves it off."""
    if value is True:
        return {}
    return None if value is False else value


_built: dict[tuple[str, ...], type[TrackingConfig]] = {}


def tracking_class() -> type[TrackingConfig]:
    """The ``tracking:`` section's class for the backends registered now: one optional field per backend."""
    key = tuple(TRACKERS)
    if key not in _built:
        fields = {
            name: (
                Annotated[entry.settings | None, BeforeValidator(_on_off)],
                Field(default=None, description=entry.description + " Off unless set (`true` or `{}`: defaults)."),
            )
            for name, entry in TRACKERS.items()
        }
        _built[key] = create_model("TrackingConfig", __base__=TrackingConfig, __doc__=TrackingConfig.__doc__, **fields)
    return _built[key]


def _validate(value: Any) -> Any:
    if isinstance(value, TrackingConfig) and type(value) is tracking_class():
        return value
    if isinstance(value, TrackingConfig):
        value = value.model_dump()
    return tracking_class().model_validate({} if value is None else value)


# the root's `tracking:` field: validated by the class of the backends registered at validation time
AnyTracking = SerializeAsAny[Annotated[TrackingConfig, BeforeValidator(_validate)]]


def default_tracking() -> TrackingConfig:
    return tracking_class()()


on_change(_built.clear)
