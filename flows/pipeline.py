"""The tunegate pipeline as one Prefect flow."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tunegate.config import TunegateConfig, load_config
from tunegate.flows.common import audited, invalid_data, trigger_label, tune_compare_deploy
from tunegate.tasks.prepare_run import prepare_run
from tunegate.tasks.validate_data import validate_data


@flow(name="tunegate-pipeline", log_prints=True)
def pipeline(
    config_path: str, overrides: dict[str, Any] | None = None, trigger: str = "manual", resume: str | None = None
):
    """Should we fine-tune, and did it pay off?

    Stages:
      1. prepare_run: resolve the base model, create runs/<run-id>/
      2. validate_data: every data check; bad data ends the run with a report
      3. plan: measured time/memory/cost estimates; `method: auto` picks the method;
         a budget cap stops the run here, before any training
      4. evaluate_baseline: each rung of the ladder, cached
      5. tune: the configured (or chosen) method
      6. evaluate_tuned: same rows, same scorer
      7. evaluate_production: the current production model on the same rows (the champion)
      8. compare: the gate declared in the config (paired bootstrap CI, McNemar, MDE) vs
         the best baseline and production; cost model and break-even; report.md/.html
      9. deploy: register the version; if promoted, re-score the registry copy and move
         `production` only if its metric reproduces (and production is still the version
         compared against)
     10. record_audit: one line in the registry's audit log, for every run that got a
         run folder, failed ones included

    The final state's message says promoted / not promoted and why. ``resume`` (a run id) runs that run
    again in its folder: the stages before training are re-done (cached where they are), training continues
    from its newest checkpoint.
    """
    cfg: TunegateConfig = load_config(config_path, overrides)
    trigger = trigger_label(trigger) + (f" (resumed run {resume})" if resume else "")
    run = prepare_run(cfg, resume)
    with audited(cfg, run, trigger) as at:
        at.validation = validation = validate_data(cfg, run)
        if not validation.ok:
            return invalid_data(cfg, run, validation, trigger)
        cfg = cfg.with_resolved(validation.resolved)  # labels found in train, a recognised format, max_length: auto
        return tune_compare_deploy(cfg, run, validation, trigger, at)
