"""The base of every config section: unknown keys are errors, assignments are validated, and a value of the wrong
scalar type is refused instead of coerced (``epochs: true`` is not 1, ``calibrated: 'yes'`` is not true)."""

import types
import typing

from pydantic import BaseModel, ConfigDict, field_validator


def _members(annotation) -> set:
    """The types a field accepts, None left out (``int | None`` -> {int}; a Literal stays itself)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return {a for a in typing.get_args(annotation) if a is not type(None)}
    return {annotation}


def wrong_scalar(annotation, value) -> str | None:
    """Why ``value`` is the wrong type for a field of ``annotation``, or None. Only what lax validation would coerce
    silently: a boolean where a number goes, anything but a boolean where only a boolean goes, and a quoted number
    where only a number goes."""
    members = _members(annotation)
    if value is None:
        return None
    numeric = members & {int, float}
    if isinstance(value, bool) and numeric and bool not in members:
        return "expects a number, not a YAML boolean"
    if members == {bool} and not isinstance(value, bool):
        return "expects true or false (a YAML boolean, without quotes)"
    if numeric and str not in members and isinstance(value, str) and _number(value):
        return "expects a number, not a quoted string (remove the quotes)"
    return None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Strict(BaseModel):
    """A config section: extra keys are rejected (a typo must never be silently ignored), and so are booleans,
    numbers and strings where another of them belongs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_silent_coercion(cls, value, info):
        field = cls.model_fields.get(info.field_name)
        why = wrong_scalar(field.annotation, value) if field is not None else None
        if why:
            raise ValueError(why)
        return value
