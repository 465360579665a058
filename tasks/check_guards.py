from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, EvalResult, GuardReport, RunContext, TuneResult
from tunegate.tasks._policy import RETRIES


@task(name="check_guards", cache_policy=NO_CACHE, **RETRIES)
def check_guards(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    tuned: TuneResult,
    tuned_eval: EvalResult,
    compare: bool = False,
) -> GuardReport:
    """What tuning may break: forgetting, slices, bias, injection, overfitting, each vs the base model (or the best
    rung) on the same rows; the gate reads the verdicts (``compare``: one entry of `tunegate compare`)."""
    return stages.check_guards(cfg, run, dataset, baselines, tuned, tuned_eval, compare=compare)
