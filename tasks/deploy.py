from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import Decision, DeployResult, EvalResult, ProductionCheck, RunContext, TuneResult
from tunegate.tasks._policy import RETRIES


@task(name="deploy", cache_policy=NO_CACHE, **RETRIES)
def deploy(
    cfg: TunegateConfig,
    run: RunContext,
    decision: Decision,
    tuned: TuneResult,
    production: ProductionCheck | None = None,
    best: EvalResult | None = None,
) -> DeployResult:
    """The only writer of the registry: a new version always; the production alias only if promoted and the
    registry copy re-scores to the judged metric (a PromotionError otherwise, after the version is registered); not
    promoted with a searched prompt as the best rung (``best``), that prompt as a prompt version too."""
    return stages.deploy(cfg, run, decision, tuned, production, best)
