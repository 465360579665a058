"""Every applicable tuning method on the same data, measured side by side, as one Prefect flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed

from tunegate.config import TunegateConfig, load_config
from tunegate.records import MethodOutcome
from tunegate.tasks._seeds import compare_one_method
from tunegate.tasks.compare_methods import compare_methods
from tunegate.tasks.evaluate_baseline import evaluate_ladder
from tunegate.tasks.plan import plan
from tunegate.tasks.prepare_run import prepare_run
from tunegate.tasks.validate_data import validate_data


@flow(name="tunegate-compare", log_prints=True)
def compare(config_path: str, overrides: dict[str, Any] | None = None):
    """Which method pays off here? Baselines once, then each method as its own tasks.

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
    baselines = evaluate_ladder(cfg, run, dataset)
    outcomes: list[MethodOutcome] = []
    for m, est in zip(methods, estimate.estimates):  # one estimate per method, in order
        if est is not None and est.applicable and est.over_budget:
            outcomes.append(
                MethodOutcome(method=m.key, status="skipped", error="over budget: " + "; ".join(est.over_budget))
            )
            continue
        if est is not None and (not est.applicable or est.error):
            outcomes.append(MethodOutcome(method=m.key, status="failed", error=est.error or est.reason))
            continue
        planned = est.config if est is not None and est.config else m  # micro_batch_size 'auto' resolved
        outcomes.append(compare_one_method(cfg.with_method(planned), run, dataset, baselines))
    listed = {m.name for m in methods}
    for name in cfg.inapplicable_methods():
        if name not in listed:
            outcomes.append(
                MethodOutcome(method=name, status="not applicable", error=f"does not apply to {cfg.task} tasks")
            )
    table = compare_methods(cfg, run, dataset, baselines, outcomes, estimate)
    return Completed(message=table.summary, data={"run_dir": run.run_dir, "comparison": table.report_md})
