from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, PlanResult, RunContext
from tunegate.report import render_plan


@task(name="plan", task_run_name="plan[{cfg.method.name}]", cache_policy=NO_CACHE)
def plan(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, methods: list | None = None) -> PlanResult:
    """Measured estimates of time/memory/cost and the advisor's choice for `auto`.

    ``blocked`` in the result says the budget forbids training; the flow then stops before
    training (a pipeline run) or skips the methods over budget (a comparison).
    """
    result = stages.plan(cfg, run, dataset, methods)
    create_markdown_artifact(
        key="plan", markdown=render_plan(result, cfg.budget), description=f"method: {result.chosen}"
    )
    return result
