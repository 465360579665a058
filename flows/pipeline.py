"""The tunegate pipeline as one Prefect flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed

from tasks.compare import compare
from tasks.deploy import deploy
from tasks.evaluate_baseline import evaluate_ladder
from tasks.evaluate_production import evaluate_production
from tasks.evaluate_tuned import evaluate_tuned
from tasks.plan import plan
from tasks.prepare_run import prepare_run
from tasks.record_audit import record_audit
from tasks.tune import tune
from tasks.validate_data import validate_data
from tunegate.config import TunegateConfig, load_config, method_from_dict


@flow(name="tunegate-pipeline", log_prints=True)
def pipeline(config_path: str, overrides: dict[str, Any] | None = None):
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
      9. deploy: register the version; move `production` only if promoted
     10. record_audit: one line in the registry's audit log, for every run that got a
         run folder, failed ones included

    The final state's message says promoted / not promoted and why.
    """
    cfg: TunegateConfig = load_config(config_path, overrides)
    run = prepare_run(cfg)
    stage = "validate_data"
    try:
        validation = validate_data(cfg, run)
        if not validation.ok:
            record_audit(cfg, run, status="failed", failed_stage=stage, error=validation.summary)
            return Failed(message=f"{validation.summary} Report: {validation.report_md}", data={"run_dir": run.run_dir})
        stage = "plan"
        estimate = plan(cfg, run, validation.dataset)
        if estimate.blocked:
            record_audit(cfg, run, status="failed", failed_stage=stage, error=estimate.blocked)
            return Failed(message=estimate.blocked, data={"run_dir": run.run_dir})
        cfg = cfg.with_method(method_from_dict(estimate.chosen_config))  # `auto` resolved; otherwise unchanged
        stage = "evaluate_baseline"
        baselines = evaluate_ladder(cfg, run, validation.dataset)
        stage = "tune"
        tuned = tune(cfg, run, validation.dataset)
        stage = "evaluate_tuned"
        tuned_eval = evaluate_tuned(cfg, run, validation.dataset, tuned)
        stage = "evaluate_production"
        champion = evaluate_production(cfg, run, validation.dataset)
        stage = "compare"
        decision = compare(cfg, run, validation.dataset, baselines, tuned_eval, tuned, estimate, champion)
        stage = "deploy"
        deployment = deploy(cfg, run, decision, tuned)
    except Exception as exc:
        try:
            record_audit(cfg, run, status="failed", failed_stage=stage, error=f"{type(exc).__name__}: {exc}")
        except Exception as audit_exc:  # noqa: BLE001 - the stage's own error is the one to surface
            print(f"WARNING: the audit record of this failed run could not be written: {audit_exc}")
        raise
    record_audit(cfg, run, status="completed", decision=decision, deployment=deployment, tuned=tuned)
    return Completed(
        message=f"{decision.summary}. {deployment.message}",
        data={"run_dir": run.run_dir, "decision": decision.decision, "headline": decision.headline,
              "deployment": deployment.model_dump()},
    )


def _error_message(state) -> str:
    """The exception message of a failed task state (no traceback)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we only want its text
        return str(exc)
    return state.message or "failed"
