"""``tracking.mlflow``'s settings (light: the config is built from them without importing MLflow)."""

from __future__ import annotations

from pydantic import Field

from tunegate.strict import Strict


class MlflowSettings(Strict):
    """``tracking.mlflow``: the MLflow tracking server (or store) a run logs to, and the registry mirror."""

    uri: str = Field(
        default="mlruns",
        description="MLflow tracking URI: http://host:5000 (an `mlflow server`), sqlite:///mlflow.db, or a folder "
        "(file store; relative to the working directory).",
    )
    experiment: str = Field(default="tunegate", description="Experiment the runs go to (created if missing).")
    mirror_registry: bool = Field(
        default=True,
        description="Mirror the registry into MLflow's model registry: every version an alias points at "
        "(production, ...) becomes a model version of the registered model named like the tunegate model, with the "
        "same aliases, moved whenever tunegate moves them (promote, rollback).",
    )
    timeout_s: float = Field(default=10.0, gt=0.0, description="HTTP timeout of each MLflow call (no retries).")
