from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import AuditRecord, RunContext, RunOutcome
from tunegate.tasks._policy import RETRIES


@task(name="record_audit", cache_policy=NO_CACHE, **RETRIES)
def record_audit(cfg: TunegateConfig, run: RunContext, outcome: RunOutcome) -> AuditRecord:
    """One line in the registry's append-only audit log for this run, whatever its outcome."""
    return stages.record_audit(cfg, run, outcome)
