from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, ProductionCheck, RunContext
from tunegate.tasks._policy import RETRIES


@task(name="evaluate_production", cache_policy=NO_CACHE, **RETRIES)
def evaluate_production(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> ProductionCheck:
    """The current production model, loaded from the registry, scored on the same rows (the champion to beat)."""
    return stages.evaluate_production(cfg, run, dataset)
