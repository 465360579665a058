from datetime import timedelta

from prefect import task

from tasks._policy import RETRIES
from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.evaluation import Rung
from tunegate.records import DatasetRef, EvalResult, RunContext


def _cache_key(context, parameters) -> str:
    # data hash + model + rung/prompt config + code version: a method-only change reuses it
    return "baseline-" + stages.baseline_cache_key(
        parameters["cfg"], parameters["run"], parameters["dataset"], parameters["rung"]
    )


@task(
    name="evaluate_baseline",
    task_run_name="evaluate_baseline[{rung.name}]",
    cache_key_fn=_cache_key,
    cache_expiration=timedelta(days=30),
    persist_result=True,
    **RETRIES,
)
def evaluate_baseline(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, rung: Rung) -> EvalResult:
    """Quality and cost of one no-tuning rung (zero-shot, few-shot) on the eval rows."""
    return stages.evaluate_baseline(cfg, run, dataset, rung)
