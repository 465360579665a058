"""Sections whose keys come from a registry (``baselines:``: one key per rung kind; ``tracking:``: one per
backend): the section's class is built from the registry and rebuilt when it changes, so a plugin registered
at run time is a config key at once."""

from __future__ import annotations

from typing import Annotated, Any, Callable, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, SerializeAsAny, create_model

S = TypeVar("S", bound=BaseModel)


def on_off(value: Any) -> Any:
    """A registry entry's key: ``true`` turns it on with its defaults, ``false`` off."""
    if value is True:
        return {}
    return None if value is False else value


class RegistrySection(Generic[S]):
    """``base``'s common keys plus one field per entry of ``registry`` (``field(entry)``: its annotation and
    ``Field``), built on first use for the entries registered then."""

    def __init__(self, base: type[S], registry: dict[str, Any], field: Callable[[Any], tuple[Any, Any]]):
        self.base, self.registry, self.field = base, registry, field
        self._built: dict[tuple[str, ...], type[S]] = {}

    def cls(self) -> type[S]:
        """The section's class for the entries registered now."""
        key = tuple(self.registry)
        if key not in self._built:
            fields = {name: self.field(entry) for name, entry in self.registry.items()}
            self._built[key] = create_model(self.base.__name__, __base__=self.base, __doc__=self.base.__doc__, **fields)
        return self._built[key]

    def clear(self) -> None:
        """Forget the built classes (a plugin was registered or removed)."""
        self._built.clear()

    def validate(self, value: Any) -> Any:
        """A section value validated by the class of the entries registered at validation time."""
        if isinstance(value, self.base) and type(value) is self.cls():
            return value
        if isinstance(value, self.base):
            value = value.model_dump()
        return self.cls().model_validate({} if value is None else value)

    def field_type(self) -> Any:
        """The root's annotation for the section: validated by :meth:`validate`, dumped with all its keys."""
        return SerializeAsAny[Annotated[self.base, BeforeValidator(self.validate)]]

    def default(self) -> S:
        return self.cls()()
