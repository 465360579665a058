"""Would more labelled rows make tuning pay off? The method's learning curve, as one Prefect flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed

from tunegate.config import TunegateConfig, load_config
from tunegate.tasks._runner import submit, task_runner
from tunegate.tasks.evaluate_baseline import submit_ladder
from tunegate.tasks.evaluate_tuned import evaluate_tuned
from tunegate.tasks.forecast_subsets import forecast_subsets
from tunegate.tasks.learning_curve import learning_curve
from tunegate.tasks.plan import plan
from tunegate.tasks.prepare_run import prepare_run
from tunegate.tasks.tune import tune
from tunegate.tasks.validate_data import validate_data


@flow(name="tunegate-forecast", log_prints=True)
def forecast(config_path: str, overrides: dict[str, Any] | None = None):
    """The method trained on nested fractions of train, scored on the same eval rows, and the fitted curve.

    Stages: prepare_run, validate_data, forecast_subsets (first: fractions the data cannot fill stop the run
    before anything is trained), plan (the method `auto` resolves to, the price), evaluate_baseline per rung
    (cached: the same ladder as `tunegate run`), then per fraction tune + evaluate_tuned (on Dask workers
    at once with ``orchestration.task_runner: dask``),
    and learning_curve (forecast.md/json/png: rows expected to clear the best baseline + min_gain, at what
    training cost, or that the curve is flat). Nothing is registered.
    """
    cfg: TunegateConfig = load_config(config_path, overrides)
    run = prepare_run(cfg)
    validation = validate_data(cfg, run)
    if not validation.ok:
        return Failed(message=f"{validation.summary} Report: {validation.report_md}", data={"run_dir": run.run_dir})
    cfg = cfg.with_resolved(validation.resolved)
    dataset = validation.dataset
    parts = forecast_subsets(cfg, run, dataset)  # first: fractions too small for the data stop the run here
    estimate = plan(cfg, run, dataset)
    if estimate.blocked:
        return Failed(message=estimate.blocked, data={"run_dir": run.run_dir})
    cfg = cfg.with_method(estimate.chosen_config)
    with task_runner(cfg, run):  # with a dask runner the rungs and the fractions train on workers at once
        ladder = submit_ladder(cfg, run, dataset)
        runs = []
        for part in parts:
            trained = submit(
                tune, fail_fast=True, cfg=cfg, run=run, dataset=part, subdir=f"forecast/rows-{part.n_train}"
            )
            runs.append(
                (part, trained, submit(evaluate_tuned, fail_fast=True, cfg=cfg, run=run, dataset=part, tuned=trained))
            )
        baselines = [f.result() for f in ladder.values()]
        points = [(part.n_train, trained.result(), scored.result()) for part, trained, scored in runs]
    result = learning_curve(cfg, run, baselines, points, estimate)
    return Completed(message=result.summary, data={"run_dir": run.run_dir, "forecast": result.report_md})
