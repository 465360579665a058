from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import AuditRecord, Decision, DeployResult, RunContext, TuneResult, ValidationResult
from tunegate.tasks._policy import RETRIES


@task(name="record_audit", cache_policy=NO_CACHE, **RETRIES)
def record_audit(
    cfg: TunegateConfig,
    run: RunContext,
    *,
    status: str,
    validation: ValidationResult | None = None,
    decision: Decision | None = None,
    deployment: DeployResult | None = None,
    tuned: TuneResult | None = None,
    failed_stage: str | None = None,
    error: str | None = None,
    trigger: str | None = None,
    headline: str | None = None,
) -> AuditRecord:
    """One line in the registry's append-only audit log for this run, whatever its outcome."""
    return stages.record_audit(
        cfg,
        run,
        status=status,
        validation=validation,
        decision=decision,
        deployment=deployment,
        tuned=tuned,
        failed_stage=failed_stage,
        error=error,
        trigger=trigger,
        headline=headline,
    )
