from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import RunContext
from tunegate.tasks._policy import RETRIES


@task(name="prepare_run", cache_policy=NO_CACHE, **RETRIES)
def prepare_run(cfg: TunegateConfig, resume: str | None = None) -> RunContext:
    """Resolve the base model (GGUF converted once, then cached) and create the run folder (or take up the run
    ``resume`` again)."""
    return stages.prepare_run(cfg, resume)
