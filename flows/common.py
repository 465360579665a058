"""The stages after data validation, shared by the pipeline and the retrain flow.

Plain Python that calls the tasks (it runs inside whichever flow calls it): plan,
baselines, tune (the challenger), evaluate it, score the current production model
(the champion) on the same rows, compare with the declared gate, deploy, and write
one audit record whatever happens.
"""

from __future__ import annotations

from prefect.states import Completed, Failed

from tunegate.config import TunegateConfig
from tunegate.methods import settings_from_dict
from tunegate.records import RunContext, ValidationResult
from tunegate.tasks.compare import compare
from tunegate.tasks.deploy import deploy
from tunegate.tasks.evaluate_baseline import evaluate_ladder
from tunegate.tasks.evaluate_production import evaluate_production
from tunegate.tasks.evaluate_tuned import evaluate_tuned
from tunegate.tasks.plan import plan
from tunegate.tasks.record_audit import record_audit
from tunegate.tasks.tune import tune


def trigger_label(trigger: str) -> str:
    """``trigger`` plus the Prefect deployment that started this flow run, if any."""
    try:
        from prefect.runtime import deployment

        name = deployment.name
    except Exception:  # noqa: BLE001 - outside a deployment there is nothing to add
        name = None
    return f"{trigger} (deployment {name})" if name else trigger


def invalid_data(cfg: TunegateConfig, run: RunContext, validation: ValidationResult, trigger: str):
    record_audit(
        cfg,
        run,
        status="failed",
        validation=validation,
        failed_stage="validate_data",
        error=validation.summary,
        trigger=trigger,
    )
    return Failed(message=f"{validation.summary} Report: {validation.report_md}", data={"run_dir": run.run_dir})


def tune_compare_deploy(cfg: TunegateConfig, run: RunContext, validation: ValidationResult, trigger: str):
    """Stages 3-10 of the pipeline; returns the flow's final state (Completed or Failed, with the decision)."""
    dataset = validation.dataset
    stage = "plan"
    try:
        estimate = plan(cfg, run, dataset)
        if estimate.blocked:
            record_audit(
                cfg,
                run,
                status="failed",
                validation=validation,
                failed_stage=stage,
                error=estimate.blocked,
                trigger=trigger,
            )
            return Failed(message=estimate.blocked, data={"run_dir": run.run_dir})
        cfg = cfg.with_method(settings_from_dict(estimate.chosen_config))  # `auto` resolved; otherwise unchanged
        stage = "evaluate_baseline"
        baselines = evaluate_ladder(cfg, run, dataset)
        stage = "tune"
        tuned = tune(cfg, run, dataset)
        stage = "evaluate_tuned"
        tuned_eval = evaluate_tuned(cfg, run, dataset, tuned)
        stage = "evaluate_production"
        champion = evaluate_production(cfg, run, dataset)
        stage = "compare"
        decision = compare(cfg, run, dataset, baselines, tuned_eval, tuned, estimate, champion, validation)
        stage = "deploy"
        deployment = deploy(cfg, run, decision, tuned, champion)
    except Exception as exc:
        try:
            error = f"{type(exc).__name__}: {exc}"
            record_audit(
                cfg, run, status="failed", validation=validation, failed_stage=stage, error=error, trigger=trigger
            )
        except Exception as audit_exc:  # noqa: BLE001 - the stage's own error is the one to surface
            print(f"WARNING: the audit record of this failed run could not be written: {audit_exc}")
        raise
    record_audit(
        cfg,
        run,
        status="completed",
        validation=validation,
        decision=decision,
        deployment=deployment,
        tuned=tuned,
        trigger=trigger,
    )
    return Completed(
        message=f"{decision.summary}. {deployment.message}",
        data={
            "run_dir": run.run_dir,
            "decision": decision.decision,
            "headline": decision.headline,
            "deployment": deployment.model_dump(),
        },
    )


def error_message(state) -> str:
    """The exception message of a failed task state (no traceback)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we only want its text
        return str(exc)
    return state.message or "failed"
