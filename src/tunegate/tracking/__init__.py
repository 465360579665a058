"""Tracking backends are plugins: where a run's stages and training steps also go.

``base`` holds :class:`Tracker` (``log_stage``, ``log_step``) and the registry (:func:`register_tracker`); each
backend registers its key under ``tracking:`` with its settings (``events``: JSON lines in the run folder;
``mlflow``: an MLflow run, and the registry's aliases mirrored to MLflow's model registry). The stages call
:func:`stage_done` after each stage and run training inside :func:`training`, whose step log the training run's
``Tracking`` callback reads; ``promotion`` calls :func:`aliases_moved` after every alias move. A backend that
raises only warns. Importing this package imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from typing import Any, Callable, Iterator

from tunegate.tracking.base import TRACKERS, Tracker, TrackerEntry, register_tracker, unregister_tracker
from tunegate.tracking.events import EventsSettings
from tunegate.tracking.mlflow_settings import MlflowSettings

register_tracker(
    "events",
    settings=EventsSettings,
    description="Every stage's result and each training step as JSON lines in the run folder (events.jsonl).",
    implementation="tunegate.tracking.events:Events",
)
register_tracker(
    "mlflow",
    settings=MlflowSettings,
    description="Each run as an MLflow run (config, every rung's and candidate's metrics with CIs, costs, the "
    "gate, the decision, the loss per step live, the report and plots), and the registry's aliases mirrored into "
    "MLflow's model registry (needs mlflow: `make setup` installs it). An MLflow failure only warns.",
    implementation="tunegate.tracking.mlflow_tracker:Mlflow",
)

log = logging.getLogger("tunegate.tracking")
_steps: contextvars.ContextVar[Callable[[int, dict[str, float]], None] | None] = contextvars.ContextVar(
    "tunegate_step_log", default=None
)


def trackers(section: Any, run: Any) -> list[Tracker]:
    """The backends ``section`` (the config's ``tracking:``) turns on, for ``run``."""
    out = []
    for key, entry in TRACKERS.items():
        settings = getattr(section, key, None) if section is not None else None
        if settings is not None:
            out.append(entry.load()(settings, run))
    return out


def _safely(tracker: Tracker, what: str, call: Callable[[], None]) -> None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - tracking must never fail a run
        log.warning(
            "tracking backend %s failed to log %s: %s: %s", type(tracker).__name__, what, type(exc).__name__, exc
        )


def stage_done(section: Any, run: Any, stage: str, result: Any) -> None:
    """Hand a finished stage's result to every backend the run turned on."""
    for t in trackers(section, run):
        _safely(t, stage, lambda t=t: t.log_stage(stage, result))


@contextlib.contextmanager
def training(section: Any, run: Any, method: str) -> Iterator[None]:
    """Within this block, each optimizer step of a training run is logged to the run's backends."""
    active = trackers(section, run)
    if not active:
        yield
        return

    def log_step(step: int, values: dict[str, float]) -> None:
        for t in active:
            _safely(t, f"step {step}", lambda t=t: t.log_step(method, step, values))

    token = _steps.set(log_step)
    try:
        yield
    finally:
        _steps.reset(token)


def aliases_moved(registry_root: Any, name: str) -> None:
    """An alias of ``name`` moved in the registry at ``registry_root`` (promote, rollback): the registries it is
    mirrored to (its ``mirrors.json``, written by a run with ``tracking.mlflow``) follow. A failure only warns."""
    from pathlib import Path

    if not (Path(registry_root) / "mirrors.json").is_file():
        return
    try:
        from tunegate.tracking.mlflow_tracker import sync_aliases

        sync_aliases(Path(registry_root), name)
    except Exception as exc:  # noqa: BLE001 - the registry is the source of truth; the mirror only follows
        log.warning("the MLflow registry mirror of %s did not follow: %s: %s", name, type(exc).__name__, exc)


def step_log() -> Callable[[int, dict[str, float]], None] | None:
    """Where the current training's steps go (None: no backend is on)."""
    return _steps.get()


__all__ = [
    "TRACKERS",
    "Tracker",
    "TrackerEntry",
    "aliases_moved",
    "register_tracker",
    "stage_done",
    "step_log",
    "trackers",
    "training",
    "unregister_tracker",
]
