"""What a tracking backend is, and the registry of them.

A backend is registered by its key under ``tracking:`` (:func:`register_tracker`) with its settings class (light:
the config is built from this registry without importing any backend) and the import path of its
:class:`Tracker`, loaded on first use. ``tracking: {<key>: {...}}`` turns it on for a run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from pydantic import BaseModel


class Tracker:
    """A tracking backend for one run: where the run's events also go (an experiment tracker, a log file).

    ``log_stage`` gets each stage's result as it finishes (the validation, each rung, the plan, the training, the
    decision, the deployment, the audit record; ``stage`` names it), ``log_step`` each optimizer step of a
    training (``values``: loss, tokens, seconds, epoch). A backend that fails only warns: tracking never fails a run.
    """

    def __init__(self, settings: Any, run: Any):
        self.settings, self.run = settings, run

    def log_stage(self, stage: str, result: Any) -> None:
        pass

    def log_step(self, method: str, step: int, values: dict[str, float]) -> None:
        pass


@dataclass(frozen=True)
class TrackerEntry:
    """A registered backend: its key under ``tracking:``, settings class, help text and implementation."""

    key: str
    settings: type[BaseModel]
    description: str
    implementation: str  # "module:Class", imported on first use

    def load(self) -> type[Tracker]:
        module, _, name = self.implementation.partition(":")
        return getattr(importlib.import_module(module), name)


TRACKERS: dict[str, TrackerEntry] = {}
_listeners: list[Callable[[], None]] = []


def register_tracker(key: str, *, settings: type[BaseModel], description: str, implementation: str) -> TrackerEntry:
    """Make ``tracking.<key>`` a config key whose settings ``settings`` validates, run by ``implementation``."""
    TRACKERS[key] = entry = TrackerEntry(key, settings, description, implementation)
    for listener in _listeners:
        listener()
    return entry


def unregister_tracker(key: str) -> None:
    TRACKERS.pop(key, None)
    for listener in _listeners:
        listener()


def on_change(listener: Callable[[], None]) -> None:
    """``listener`` is called whenever a backend is registered or removed (the config rebuilds its section)."""
    _listeners.append(listener)
