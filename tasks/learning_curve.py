from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import EvalResult, ForecastResult, PlanResult, RunContext, TuneResult


@task(name="learning_curve", cache_policy=NO_CACHE)
def learning_curve(
    cfg: TunegateConfig,
    run: RunContext,
    baselines: list[EvalResult],
    points: list[tuple[int, TuneResult, EvalResult]],
    plan: PlanResult | None = None,
    in_report: bool = False,
) -> ForecastResult:
    """Fit the learning curve, extrapolate it against the best baseline + min_gain; forecast.md/json/png
    (``in_report``: also a section of the run's report)."""
    result = stages.learning_curve(cfg, run, baselines, points, plan, in_report=in_report)
    create_markdown_artifact(key="forecast", markdown=Path(result.report_md).read_text(), description=result.summary)
    return result
