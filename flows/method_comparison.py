"""Every applicable tuning method on the same data, measured side by side, as one Prefect flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed

from tunegate.config import TunegateConfig, load_config
from tunegate.records import MethodOutcome
from tunegate.tasks._runner import task_runner
from tunegate.tasks._seeds import method_outcome, submit_method
from tunegate.tasks.compare_methods import compare_methods
from tunegate.tasks.evaluate_baseline import submit_ladder
from tunegate.tasks.plan import plan
from tunegate.tasks.prepare_run import prepare_run
from tunegate.tasks.validate_data import validate_data


@flow(name="tunegate-compare", log_prints=True)
def compare(config_path: str, overrides: dict[str, Any] | None = None):
    """Which method pays off here? Baselines once, then each method as its own tasks (on Dask workers at once
    with ``orchestration.task_runner: dask``).

    Stages: prepare_run, validate_data, plan (estimates for every method), evaluate_baseline
    per rung (cached), then per method tune + evaluate_tuned (once per seed with gate.seeds; a
    failure is recorded in the table and the next method runs) + check_guards, compare-methods
    (table, CIs, chart, each entry's guards, the metric against retention; with seeds, each
    method's claim is a bootstrap over seeds and rows). One method listed twice (a sweep of
    method.layers) is two entries, named by what differs. Nothing is
    registered: this is a measurement, `tunegate run` promotes.
    """
    cfg: TunegateConfig = load_config(config_path, overrides)
    run = prepare_run(cfg)
    validation = validate_data(cfg, run)
    if not validation.ok:
        return Failed(message=f"{validation.summary} Report: {validation.report_md}", data={"run_dir": run.run_dir})
    cfg = cfg.with_resolved(validation.resolved)  # labels found in train, a recognised format, max_length: auto
    dataset = validation.dataset
    methods = cfg.compare_methods()
    estimate = plan(cfg, run, dataset, methods)
    with task_runner(cfg, run):
        return _measure(cfg, run, dataset, methods, estimate)


def _measure(cfg: TunegateConfig, run, dataset, methods, estimate):
    ladder = list(submit_ladder(cfg, run, dataset).values())  # the guards wait for it; the trainings do not
    entries: list = []  # a row already, or a method handed to the task runner (on workers at once with dask)
    for m, est in zip(methods, estimate.estimates):  # one estimate per method, in order
        if est is not None and est.applicable and est.over_budget:
            entries.append(
                MethodOutcome(method=m.key, status="skipped", error="over budget: " + "; ".join(est.over_budget))
            )
            continue
        if est is not None and (not est.applicable or est.error):
            entries.append(MethodOutcome(method=m.key, status="failed", error=est.error or est.reason))
            continue
        planned = est.config if est is not None and est.config else m  # micro_batch_size 'auto' resolved
        entries.append(submit_method(cfg.with_method(planned), run, dataset, ladder))
    baselines = [f.result() for f in ladder]  # a failed rung raises, as in a sequential run
    outcomes = [e if isinstance(e, MethodOutcome) else method_outcome(e) for e in entries]
    listed = {m.name for m in methods}
    for name in cfg.inapplicable_methods():
        if name not in listed:
            outcomes.append(
                MethodOutcome(method=name, status="not applicable", error=f"does not apply to {cfg.task} tasks")
            )
    table = compare_methods(cfg, run, dataset, baselines, outcomes, estimate)
    return Completed(message=table.summary, data={"run_dir": run.run_dir, "comparison": table.report_md})
