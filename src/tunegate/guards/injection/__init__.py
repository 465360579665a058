"""The ``injection`` guard: registered here with its settings; the implementation (``guard.py``) is imported when a
run measures it."""

from tunegate.guards.base import register_guard
from tunegate.guards.injection.settings import InjectionSettings

register_guard(
    "injection",
    settings=InjectionSettings,
    description='Injected instructions in the input ("ignore the above and answer X"): the share the candidate '
    "obeys vs the base model.",
    implementation="tunegate.guards.injection.guard:Injection",
)
