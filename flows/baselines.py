"""The baseline ladder alone: what prompting and retrieval give without tuning, as one Prefect flow."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed

from tunegate.config import TunegateConfig, load_config
from tunegate.tasks._runner import task_runner
from tunegate.tasks.evaluate_baseline import evaluate_ladder
from tunegate.tasks.prepare_run import prepare_run
from tunegate.tasks.summarize_ladder import summarize_ladder
from tunegate.tasks.validate_data import validate_data


@flow(name="tunegate-baselines", log_prints=True)
def baselines(config_path: str, overrides: dict[str, Any] | None = None):
    """Measure every rung of the baseline ladder on the eval rows; nothing is trained or registered.

    Stages: prepare_run, validate_data, evaluate_baseline per rung (zero-shot, calibrated zero-shot,
    few-shot, retrieved few-shot per retriever, RAG per retriever; each cached), summarize-ladder
    (ladder.md/.json: metric with CI, prompt tokens, retrieval and total latency, index build and size).
    """
    cfg: TunegateConfig = load_config(config_path, overrides)
    run = prepare_run(cfg)
    validation = validate_data(cfg, run)
    if not validation.ok:
        return Failed(message=f"{validation.summary} Report: {validation.report_md}", data={"run_dir": run.run_dir})
    cfg = cfg.with_resolved(validation.resolved)  # labels found in train, a recognised format, max_length: auto
    with task_runner(cfg, run):  # with a dask runner the rungs run on workers at once
        results = evaluate_ladder(cfg, run, validation.dataset)
    ladder = summarize_ladder(cfg, run, validation.dataset, results)
    best = next(r for r in ladder["rows"] if r["best"])
    message = f"best rung: {best['name']} {ladder['gate_metric']} {best['metric']:.3f} of {len(results)} rungs"
    return Completed(message=message, data={"run_dir": run.run_dir, "ladder": ladder["report_md"]})
