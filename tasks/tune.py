from __future__ import annotations

import uuid
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import stages
from tunegate.config import TunegateConfig
from tunegate.errors import TunegateError
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
    ``subdir`` below that: seeds/seed-<n>/, forecast/rows-<n>/). With ``orchestration.tune_on``, the training
    runs as that deployment (another work pool) and this task waits for it."""
    if cfg.orchestration.tune_on:
        return tune_on_deployment(cfg, run, dataset, compare=compare, subdir=subdir)
    return stages.tune(cfg, run, dataset, compare=compare, subdir=subdir)


def write_result(result: TuneResult, path: str | Path) -> None:
    """The remote training's result, where the caller reads it (written whole or not at all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(result.model_dump_json(indent=2))
    tmp.replace(path)


def tune_on_deployment(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, *, compare, subdir) -> TuneResult:
    """Start the ``tune_on`` deployment (flows/tune_remote.py) with this training's inputs, wait for it, read its
    result from the shared run folder."""
    from prefect.deployments import run_deployment

    name = cfg.orchestration.tune_on
    result_path = Path(run.run_dir) / "remote" / f"tune-{uuid.uuid4().hex[:12]}.json"
    parameters = {
        "config": cfg.model_dump(mode="json"),
        "config_dir": str(Path(cfg.config_dir).resolve()),
        "run": run.model_dump(mode="json"),
        "dataset": dataset.model_dump(mode="json"),
        "result_path": str(result_path),
        "compare": compare,
        "subdir": subdir,
    }
    print(f"tune: starting deployment {name} (orchestration.tune_on) and waiting for it")
    try:
        flow_run = run_deployment(name, parameters=parameters, timeout=None)
    except Exception as exc:  # noqa: BLE001 - a missing deployment is the user's to fix: say how
        if "not found" in str(exc).lower() or type(exc).__name__ == "ObjectNotFound":
            raise TunegateError(
                f"orchestration.tune_on: no deployment '{name}' on this Prefect server; deploy it first "
                "(`prefect deploy --prefect-file deployments/prefect.yaml --name tune-gpu`) or unset tune_on"
            ) from None
        raise
    state = flow_run.state
    if state is None or not state.is_completed():
        why = state.message if state is not None and state.message else "no message"
        raise TunegateError(
            f"orchestration.tune_on: the training flow run {flow_run.name} of {name} ended "
            f"{state.type.value if state is not None else 'without a state'}: {why}"
        )
    if not result_path.is_file():
        raise TunegateError(
            f"orchestration.tune_on: {name} finished but its result {result_path} is not here: the run folder "
            "must be on storage shared with the tune pool's workers"
        )
    print(f"tune: {name} finished (flow run {flow_run.name})")
    return TuneResult.model_validate_json(result_path.read_text())
