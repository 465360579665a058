from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import SourceWatch
from tunegate.tasks._policy import RETRIES


@task(name="watch_sources", cache_policy=NO_CACHE, **RETRIES)
def watch_sources(cfg: TunegateConfig) -> SourceWatch:
    """Have the raw data files changed since the data-change trigger last looked? (a byte hash, no model)"""
    return stages.watch_sources(cfg)
