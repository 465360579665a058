from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DriftCheck
from tunegate.tasks._policy import RETRIES


@task(name="check_drift", cache_policy=NO_CACHE, **RETRIES)
def check_drift(cfg: TunegateConfig, min_requests: int = 100) -> DriftCheck:
    """Have the served inputs moved away from production's eval rows past serve.drift_threshold? (no model)"""
    return stages.check_drift(cfg, min_requests=min_requests)
