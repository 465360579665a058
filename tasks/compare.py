from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, Decision, EvalResult, PlanResult, RunContext, TuneResult


@task(name="compare", cache_policy=NO_CACHE)
def compare(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    tuned_eval: EvalResult,
    tuned: TuneResult,
    plan: PlanResult | None = None,
) -> Decision:
    """Paired bootstrap CI of tuned - best baseline, the gate, costs; deterministic, so never retried."""
    decision = stages.compare(cfg, run, dataset, baselines, tuned_eval, tuned, plan)
    create_markdown_artifact(key="run-report", markdown=(Path(run.run_dir) / "report.md").read_text(), description=decision.summary)
    create_table_artifact(
        key="quality-and-cost",
        table=[
            {"model": name, **{k: round(v, 4) for k, v in m.items()}, **decision.costs.get(name, {})}
            for name, m in [*decision.baselines.items(), (f"tuned:{tuned.method}", decision.tuned)]
        ],
        description=decision.summary,
    )
    return decision
