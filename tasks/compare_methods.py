from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, EvalResult, MethodComparison, MethodOutcome, PlanResult, RunContext

TABLE_KEYS = (
    "name",
    "status",
    "metric",
    "ci_low",
    "ci_high",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "trainable_params",
    "peak_rss_mb",
    "train_seconds",
    "est_train_seconds",
    "artifact_mb",
    "latency_ms_per_request",
    "decision",
    "error",
)


@task(name="compare-methods", cache_policy=NO_CACHE)
def compare_methods(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    outcomes: list[MethodOutcome],
    plan: PlanResult | None = None,
) -> MethodComparison:
    """The measured trade-off table (compare.md/.json, compare.png) and its Prefect artifacts."""
    result = stages.compare_methods(cfg, run, dataset, baselines, outcomes, plan)
    create_markdown_artifact(
        key="method-comparison", markdown=Path(result.report_md).read_text(), description=result.summary
    )
    create_table_artifact(
        key="method-comparison-table",
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.model_dump().items() if k in TABLE_KEYS}
            for r in result.rows
        ],
        description=result.summary,
    )
    return result
