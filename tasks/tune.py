from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, RunContext, TuneResult
from tunegate.tasks._policy import RETRIES


@task(name="tune", task_run_name="tune[{cfg.method.key}]", cache_policy=NO_CACHE, **RETRIES)
def tune(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    compare: bool = False,
    subdir: str | None = None,
) -> TuneResult:
    """Train the configured method; the artifact is saved under the run folder (methods/<name>/ in a comparison;
    ``subdir`` below that: seeds/seed-<n>/, forecast/rows-<n>/)."""
    return stages.tune(cfg, run, dataset, compare=compare, subdir=subdir)
