"""Champion/challenger retraining, on a schedule or when the data changes.

``retrain``: re-read the current data snapshot and validate it; if its data hash (and the
config) equal those of the newest registered version, stop and record "no change" in the
audit log (unless ``force``); otherwise tune a challenger and run it through the same gate
as the pipeline: it must beat the best baseline rung **and** the current production model
(the champion), scored on the same eval rows, to be promoted.

``retrain_on_change``: the data-change trigger. Meant for a short schedule (every few
minutes): it hashes the raw data files (cheap: no model is loaded) and starts ``retrain``
as a subflow only when the fingerprint differs from the one it saw last.

``retrain_on_drift``: the drift trigger. It reads ``tunegate serve``'s request log and starts
``retrain`` (forced: the drift is the reason, even if the data files did not change) when the
inputs production answered have moved away from its eval rows past ``serve.drift_threshold``.
A retrain can only follow the drift if the data the config reads reflects the new inputs
(e.g. labelled live traffic appended to it); the gate still refuses a challenger that does
not beat the baselines and production.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed

from tunegate.config import TunegateConfig, load_config
from tunegate.flows.common import audited, invalid_data, trigger_label, tune_compare_deploy
from tunegate.records import RunOutcome
from tunegate.tasks.check_change import check_change
from tunegate.tasks.check_drift import check_drift
from tunegate.tasks.prepare_run import prepare_run
from tunegate.tasks.record_audit import record_audit
from tunegate.tasks.remember_sources import remember_sources
from tunegate.tasks.validate_data import validate_data
from tunegate.tasks.watch_sources import watch_sources


@flow(name="tunegate-retrain", log_prints=True)
def retrain(config_path: str, overrides: dict[str, Any] | None = None, force: bool = False, trigger: str = "manual"):
    """Retrain the challenger if the data changed; promote it only if it beats the baselines and production.

    Stages: prepare_run, validate_data (the current snapshot), check_change (data and config
    hash vs the newest registered version; "no change" ends the run here and is audited),
    then the pipeline's plan, evaluate_baseline, tune, evaluate_tuned, evaluate_production,
    compare, deploy and record_audit.
    """
    cfg: TunegateConfig = load_config(config_path, overrides)
    trigger = trigger_label(trigger)
    run = prepare_run(cfg)
    with audited(cfg, run, trigger) as at:
        at.validation = validation = validate_data(cfg, run)
        if not validation.ok:
            return invalid_data(cfg, run, validation, trigger)
        cfg = cfg.with_resolved(validation.resolved)  # labels found in train, a recognised format, max_length: auto
        at.stage = "check_change"
        change = check_change(cfg, run, validation.dataset, force)
        print(change.reason)
        if not change.changed:
            at.stage = "record_audit"
            outcome = RunOutcome(status="skipped", validation=validation, headline=change.reason, trigger=trigger)
            record_audit(cfg, run, outcome)
            return Completed(
                message=change.reason, data={"run_dir": run.run_dir, "decision": None, "headline": change.reason}
            )
        return tune_compare_deploy(cfg, run, validation, trigger, at)


@flow(name="tunegate-retrain-on-change", log_prints=True)
def retrain_on_change(config_path: str, overrides: dict[str, Any] | None = None):
    """Run ``retrain`` only if the data files changed since this trigger last looked (a cheap byte hash)."""
    cfg: TunegateConfig = load_config(config_path, overrides)
    watch = watch_sources(cfg)
    print(watch.message)
    if not watch.changed:
        return Completed(message=watch.message, data={"retrained": False})
    state = retrain(config_path=config_path, overrides=overrides, trigger="data-change", return_state=True)
    # remembered whatever the outcome: a bad snapshot is audited once, not retried every few minutes
    remember_sources(cfg, watch, state.type.value)
    if state.is_failed():
        return state
    return Completed(message=f"data changed; retrain: {state.message}", data={"retrained": True})


@flow(name="tunegate-retrain-on-drift", log_prints=True)
def retrain_on_drift(config_path: str, overrides: dict[str, Any] | None = None, min_requests: int = 100):
    """Run ``retrain`` (forced) only if the served inputs drifted past ``serve.drift_threshold``."""
    cfg: TunegateConfig = load_config(config_path, overrides)
    drift = check_drift(cfg, min_requests)
    print(drift.message)
    if not drift.drifted:
        return Completed(message=drift.message, data={"retrained": False, "score": drift.score})
    state = retrain(config_path=config_path, overrides=overrides, force=True, trigger="drift", return_state=True)
    if state.is_failed():
        return state
    return Completed(
        message=f"{drift.message}; retrain: {state.message}", data={"retrained": True, "score": drift.score}
    )
