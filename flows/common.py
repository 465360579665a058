"""The stages after data validation, shared by the pipeline and the retrain flow.

Plain Python that calls the tasks (it runs inside whichever flow calls it): plan,
baselines, tune (the challenger), evaluate it, score the current production model
(the champion) on the same rows, compare with the declared gate, deploy, and write
one audit record whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prefect.exceptions import TerminationSignal
from prefect.states import Completed, Failed

from tunegate.config import TunegateConfig
from tunegate.records import GateInputs, RunContext, RunOutcome, ValidationResult
from tunegate.tasks._runner import failed, submit, task_runner
from tunegate.tasks._seeds import candidate, error_message, submit_candidate
from tunegate.tasks.check_guards import check_guards
from tunegate.tasks.compare import compare
from tunegate.tasks.deploy import deploy
from tunegate.tasks.evaluate_baseline import submit_ladder
from tunegate.tasks.evaluate_production import evaluate_production
from tunegate.tasks.evaluate_tuned import evaluate_tuned
from tunegate.tasks.forecast_subsets import forecast_subsets
from tunegate.tasks.learning_curve import learning_curve
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


@dataclass
class Progress:
    """Where a run is: the stage running now and the validation result once there is one."""

    stage: str = "validate_data"
    validation: ValidationResult | None = None


# SIGINT; SIGTERM as Prefect's flow engine raises it inside a run (and as the CLI turns it into SystemExit outside)
STOPPED = (KeyboardInterrupt, TerminationSignal, SystemExit)


@contextmanager
def audited(cfg: TunegateConfig, run: RunContext, trigger: str) -> Iterator[Progress]:
    """Every run that got a run folder is audited, whatever stops it: an exception in any stage (validation
    included) is recorded as ``failed`` and a stop signal as ``cancelled``, with the stage it was in; then it
    propagates. The record is written by the library directly (no task): it must work while the run is being
    torn down. The stages' own outcomes (completed, rejected data, skipped) are recorded by the flow."""
    at = Progress()
    try:
        yield at
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, STOPPED) else "failed"
        if isinstance(exc, KeyboardInterrupt):
            error = "stopped by SIGINT (Ctrl-C)"
        elif isinstance(exc, TerminationSignal):
            error = "stopped by SIGTERM" if exc.signal == 15 else f"stopped by signal {exc.signal}"
        elif isinstance(exc, SystemExit):
            error = "stopped by SIGTERM" if exc.code == 143 else f"stopped (exit {exc.code})"
        else:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        try:
            outcome = RunOutcome(
                status=status, validation=at.validation, failed_stage=at.stage, error=error, trigger=trigger
            )
            record_audit.fn(cfg, run, outcome)  # the library function itself, not a task run: the run is torn down
        except Exception as audit_exc:  # noqa: BLE001 - the stage's own error is the one to surface
            print(f"WARNING: the audit record of this {status} run could not be written: {audit_exc}")
        raise


def isolate_temporary_server() -> None:
    """Start Prefect's temporary server (the one a CLI run starts when PREFECT_API_URL is unset) in its own
    process group, tied to this process's life.

    A scheduler or a terminal stops a job by signalling its whole process group: the server would die at once
    while the run, handling the same signal, still reports its final state to it, retrying against a dead
    port for minutes. In its own group the server outlives that report and is stopped by Prefect's exit hook;
    if this process is killed outright (SIGKILL), the kernel sends the server SIGTERM (PR_SET_PDEATHSIG), so it
    is never left behind holding its port."""
    import subprocess

    from prefect.server.api import server as srv

    from tunegate.distributed import die_with_parent

    cls = srv.SubprocessASGIServer
    if getattr(cls, "_tunegate_isolated", False):
        return
    in_child = die_with_parent()

    original = cls._run_uvicorn_command
    popen = subprocess.Popen

    def run_isolated(self):
        def isolated(*args, **kwargs):
            return popen(*args, **kwargs, start_new_session=True, preexec_fn=in_child)  # own group, dies with us

        srv.subprocess.Popen = isolated  # only for this call: the one Popen that starts the server
        try:
            return original(self)
        finally:
            srv.subprocess.Popen = popen

    cls._run_uvicorn_command = run_isolated
    cls._tunegate_isolated = True


def invalid_data(cfg: TunegateConfig, run: RunContext, validation: ValidationResult, trigger: str):
    """The run stops on bad data: audited, and the data's own errors are the message (even when the audit record
    cannot be written: then that is said too)."""
    note = ""
    try:
        outcome = RunOutcome(
            status="failed",
            validation=validation,
            failed_stage="validate_data",
            error=validation.summary,
            trigger=trigger,
        )
        record_audit(cfg, run, outcome)
    except Exception as exc:  # noqa: BLE001 - the data's errors must still reach the user
        note = f" WARNING: the audit record could not be written ({type(exc).__name__}: {exc})."
    return Failed(message=f"{validation.summary} Report: {validation.report_md}.{note}", data={"run_dir": run.run_dir})


def tune_compare_deploy(
    cfg: TunegateConfig, run: RunContext, validation: ValidationResult, trigger: str, at: Progress
) -> Completed | Failed:
    """Stages 3-10 of the pipeline (inside :func:`audited`, whose ``at`` they advance); returns the flow's final
    state (Completed or Failed, with the decision)."""
    dataset = validation.dataset
    at.stage = "plan"
    estimate = plan(cfg, run, dataset)
    if estimate.blocked:
        outcome = RunOutcome(
            status="failed", validation=validation, failed_stage=at.stage, error=estimate.blocked, trigger=trigger
        )
        record_audit(cfg, run, outcome)
        return Failed(message=estimate.blocked, data={"run_dir": run.run_dir})
    cfg = cfg.with_method(estimate.chosen_config)  # `auto` resolved; otherwise unchanged
    with task_runner(cfg, run):  # orchestration.task_runner: rungs and seeds on Dask workers at once
        return judge_and_deploy(cfg, run, validation, trigger, at, estimate)


def judge_and_deploy(cfg, run, validation, trigger, at, estimate) -> Completed:
    """Stages 4-10: the ladder, the candidate, its guards, the champion, the gate, deploy, the audit record."""
    dataset = validation.dataset
    at.stage = "evaluate_baseline"
    ladder = submit_ladder(cfg, run, dataset)
    runs = submit_candidate(cfg, run, dataset, on_stage=lambda stage: setattr(at, "stage", stage))
    at.stage = "evaluate_baseline"  # with a dask runner, the rungs and the training run at once: read them back
    baselines = [f.result() for f in ladder.values()]
    tuned, tuned_eval, seeds = candidate(cfg, runs, on_stage=lambda stage: setattr(at, "stage", stage))
    at.stage = "check_guards"
    guarded = check_guards(cfg, run, dataset, baselines, tuned, tuned_eval)
    at.stage = "evaluate_production"
    champion = evaluate_production(cfg, run, dataset)
    at.stage = "compare"
    judged = dict(baselines=baselines, tuned=tuned, tuned_eval=tuned_eval, plan=estimate, seeds=seeds, guards=guarded)
    decision = compare(cfg, run, dataset, GateInputs(**judged, production=champion, validation=validation))
    at.stage = "deploy"
    best = next((b for b in baselines if b.name == decision.best_baseline), None)
    deployment = deploy(cfg, run, decision, tuned, champion, best)
    if cfg.forecast.after_reject and decision.decision == "reject":
        at.stage = "forecast"
        forecast_after_reject(cfg, run, dataset, baselines, tuned, tuned_eval, estimate)
    at.stage = "record_audit"
    done = dict(validation=validation, decision=decision, deployment=deployment, tuned=tuned, trigger=trigger)
    record_audit(cfg, run, RunOutcome(status="completed", **done))
    return Completed(
        message=f"{decision.summary}. {deployment.message}",
        data={
            "run_dir": run.run_dir,
            "decision": decision.decision,
            "headline": decision.headline,
            "deployment": deployment.model_dump(),
        },
    )


def forecast_after_reject(cfg, run, dataset, baselines, tuned, tuned_eval, estimate) -> None:
    """`forecast.after_reject`: the learning curve, the run's model as its full-data point; added to the report.
    A failure here is reported, not the run's failure (the decision and the version stand)."""
    points, runs = [], []
    for part in forecast_subsets(cfg, run, dataset):
        if part.n_train == dataset.n_train:
            points.append((part.n_train, tuned, tuned_eval))
            continue
        trained = submit(tune, cfg=cfg, run=run, dataset=part, subdir=f"forecast/rows-{part.n_train}")
        runs.append((part, trained, submit(evaluate_tuned, cfg=cfg, run=run, dataset=part, tuned=trained)))
    for part, trained, scored in runs:  # each fraction on its own worker with a dask task runner
        for what, future in (("training", trained), ("scoring", scored)):
            if failed(future):
                why = error_message(future.state) if future.state is not None else "its training failed"
                print(f"WARNING: the forecast stopped: {what} on {part.n_train} rows failed: {why}")
                return
        points.append((part.n_train, trained.result(), scored.result()))
    points.sort(key=lambda p: p[0])
    state = learning_curve(cfg, run, baselines, points, estimate, in_report=True, return_state=True)
    if state.is_failed():
        print(f"WARNING: the forecast failed: {error_message(state)}")
