from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import ChangeCheck, DatasetRef, RunContext
from tunegate.tasks._policy import RETRIES


@task(name="check_change", cache_policy=NO_CACHE, **RETRIES)
def check_change(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, force: bool = False) -> ChangeCheck:
    """Is there anything new to learn from? Data and config hashes vs the newest registered version's."""
    return stages.check_change(cfg, run, dataset, force=force)
