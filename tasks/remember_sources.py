from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import SourceWatch
from tunegate.tasks._policy import RETRIES


@task(name="remember_sources", cache_policy=NO_CACHE, **RETRIES)
def remember_sources(cfg: TunegateConfig, watch: SourceWatch, outcome: str) -> None:
    """Remember the source files' fingerprint and what the retrain made of it (a bad snapshot is audited once,
    not retried every few minutes)."""
    stages.remember_sources(cfg, watch, outcome)
