from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, RunContext


@task(name="forecast_subsets", cache_policy=NO_CACHE)
def forecast_subsets(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> list[DatasetRef]:
    """The train rows cut to nested fractions (`forecast.fractions`), each with its own data hash."""
    return stages.forecast_subsets(cfg, run, dataset)
