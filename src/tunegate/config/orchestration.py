"""The ``orchestration:`` section: where a run's independent task runs execute.

``sequential`` (the default) runs every task in the flow's process, one after another. ``dask`` submits the ones
that do not depend on each other (the ladder's rungs, the methods of ``compare``, the seeds of ``gate.seeds``,
the fractions of ``forecast``) to Dask workers through prefect-dask's ``DaskTaskRunner``: a local cluster of
``workers`` processes, or the scheduler at ``address``. ``tune_on`` runs the training stage as its own Prefect
deployment (on another work pool: a GPU pool) while the rest runs where the flow runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunegate.strict import Strict as _Strict


class OrchestrationConfig(_Strict):
    """Where the run's tasks execute: in the flow's process, on Dask workers, and where training runs."""

    task_runner: Literal["sequential", "dask"] = Field(
        default="sequential",
        description="'sequential': every task in the flow's process, one after another. 'dask': independent tasks "
        "(rungs, compared methods, seeds, forecast fractions) on Dask workers at once (prefect-dask). The run "
        "folder, the model cache (~/.cache/tunegate) and the registry must be on storage every worker reads and "
        "writes (checked when the run starts).",
    )
    address: str | None = Field(
        default=None,
        description="With task_runner: dask, the scheduler of an existing cluster (tcp://host:8786); unset: a "
        "local cluster of `workers` processes, started for the run and stopped after it.",
    )
    workers: int = Field(
        default=2, ge=1, le=256, description="Worker processes of the local cluster (ignored with an address)."
    )
    threads_per_worker: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Torch threads of each worker. A worker runs one task at a time (a task holds a model: two "
        "in one process would only share its cores); on a machine with C cores, workers x threads_per_worker = C.",
    )
    tune_on: str | None = Field(
        default=None,
        description="Run the training stage as this Prefect deployment ('FLOW/DEPLOYMENT', e.g. "
        "'tunegate-tune/tune-gpu' served by a GPU work pool) and wait for it; the ladder, the gate and the "
        "rest run where the flow runs. Unset: training runs in the flow like every stage.",
    )

    @field_validator("address")
    @classmethod
    def _scheduler_address(cls, v: str | None) -> str | None:
        if v is not None and "://" not in v:
            raise ValueError(f"'{v}' is not a scheduler address: write it as tcp://HOST:PORT (Dask's port: 8786)")
        return v

    @field_validator("tune_on")
    @classmethod
    def _deployment_name(cls, v: str | None) -> str | None:
        if v is not None and (v.count("/") != 1 or not all(v.split("/"))):
            raise ValueError(
                f"'{v}' is not a deployment name: write FLOW/DEPLOYMENT, e.g. tunegate-tune/tune-gpu "
                "(`prefect deployment ls` lists them)"
            )
        return v

    @model_validator(mode="after")
    def _address_needs_dask(self):
        if self.address is not None and self.task_runner != "dask":
            raise ValueError("orchestration.address is a Dask scheduler: set task_runner: dask too")
        return self
