from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, EvalResult, RunContext, TuneResult
from tunegate.tasks._policy import RETRIES


@task(name="evaluate_tuned", cache_policy=NO_CACHE, **RETRIES)
def evaluate_tuned(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, tuned: TuneResult) -> EvalResult:
    """The tuned artifact, loaded back from disk, scored by the baselines' code on the same rows."""
    return stages.evaluate_tuned(cfg, run, dataset, tuned)
