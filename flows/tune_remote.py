"""The training stage as a flow of its own, for ``orchestration.tune_on``: deployed on another work pool (a GPU
pool) while the ladder, the gate and the rest run where the pipeline's flow runs.

The pipeline's ``tune`` task starts this deployment (``run_deployment``) with the resolved config, the run and
the dataset (small records: paths and hashes; the run folder, the model cache and the registry are on shared
storage) and waits; this flow trains in its worker's machine, writes the ``TuneResult`` to the path it was given
in the run folder (atomically) and returns it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from tunegate.config import parse_config
from tunegate.records import DatasetRef, RunContext
from tunegate.tasks.tune import tune, write_result


@flow(name="tunegate-tune", log_prints=True)
def tune_remote(
    config: dict[str, Any],
    config_dir: str,
    run: RunContext,
    dataset: DatasetRef,
    result_path: str,
    compare: bool = False,
    subdir: str | None = None,
):
    """Train the configured method on this worker's machine (``orchestration.tune_on`` of the calling run).

    Stages: tune (the same task the pipeline runs in-process otherwise); its result is written to
    ``result_path`` in the shared run folder for the caller to read.
    """
    cfg = parse_config(config, config_dir=Path(config_dir))
    here = cfg.model_copy(update={"orchestration": cfg.orchestration.model_copy(update={"tune_on": None})})
    result = tune(here, run, dataset, compare=compare, subdir=subdir)
    write_result(result, result_path)
    return result
