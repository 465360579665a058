from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, EvalResult, RunContext

TABLE_KEYS = (
    "name",
    "metric",
    "ci_low",
    "ci_high",
    "prompt",
    "prompt_tokens_per_request",
    "retrieval_ms_per_request",
    "latency_ms_per_request",
    "setup_seconds",
    "index_mb",
    "best",
)


@task(name="summarize-ladder", cache_policy=NO_CACHE)
def summarize_ladder(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, baselines: list[EvalResult]) -> dict:
    """The baseline ladder's table (ladder.md/.json) and its Prefect artifacts."""
    out = stages.summarize_ladder(cfg, run, dataset, baselines)
    summary = f"best rung: {out['best']}"
    create_markdown_artifact(key="baseline-ladder", markdown=Path(out["report_md"]).read_text(), description=summary)
    create_table_artifact(
        key="baseline-ladder-table",
        table=[
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k in TABLE_KEYS}
            for r in out["rows"]
        ],
        description=summary,
    )
    return out
