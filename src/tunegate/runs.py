"""A run's identity and folder: the resolved base model, the run id, the resolved config written beside it."""

from __future__ import annotations

import time
import uuid

import yaml

from tunegate import hardware
from tunegate.config import TunegateConfig
from tunegate.modeling import resolve_model
from tunegate.records import RunContext


def start_run(cfg: TunegateConfig) -> RunContext:
    """Resolve the base model (converting a GGUF once), create ``<output.dir>/<run-id>/`` and write config.yaml."""
    model = resolve_model(cfg.model, config_dir=cfg.config_dir)
    placement = hardware.resolve(cfg.hardware)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = (cfg.output.dir / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return RunContext(
        run_id=run_id,
        run_dir=str(run_dir),
        model_spec=cfg.model,
        model_path=model.path,
        model_id=model.model_id,
        model_sha=model.sha,
        config_hash=cfg.config_hash(),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        placement=placement,
    )
