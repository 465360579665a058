from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.records import RunContext, ValidationResult
from tunegate.tasks._policy import RETRIES


@task(name="validate_data", cache_policy=NO_CACHE, **RETRIES)
def validate_data(cfg: TunegateConfig, run: RunContext) -> ValidationResult:
    """Every data check at once; bad data is a result (ok=False), not an exception to retry."""
    result = stages.validate_data(cfg, run)
    create_markdown_artifact(
        key="validation-report", markdown=Path(result.report_md).read_text(), description=result.summary[:500]
    )
    return result
