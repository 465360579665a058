from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, Decision, GateInputs, RunContext


@task(name="compare", cache_policy=NO_CACHE)
def compare(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, inputs: GateInputs) -> Decision:
    """The declared gate vs the best baseline (and production), costs and break-even; deterministic, so never retried.

    The run report and the model table are published as Prefect artifacts of the flow run.
    """
    decision = stages.compare(cfg, run, dataset, inputs)
    run_dir = Path(run.run_dir)
    create_markdown_artifact(
        key="run-report", markdown=(run_dir / "report.md").read_text(), description=decision.headline
    )
    create_table_artifact(
        key="quality-and-cost",
        table=[
            {
                "model": r.name,
                decision.gate_metric: round(r.metric, 4),
                "ci_low": round(r.ci_low, 4),
                "ci_high": round(r.ci_high, 4),
                "delta_vs_best_baseline": round(r.delta, 4),
                "prompt_tokens": round(r.prompt_tokens, 1),
                "latency_ms": round(r.latency_ms, 1),
                "one_off_usd": round(r.one_off_usd, 6),
                "usd_per_1k_requests": round(1000 * r.per_request_usd, 6),
                "usd_per_month": round(r.monthly_usd, 4),
                "decision": r.decision,
            }
            for r in decision.models
        ],
        description=decision.headline,
    )
    return decision
