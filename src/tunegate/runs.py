"""A run's identity and folder: the resolved base model, the run id, the resolved config written beside it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

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
    write_run_config(cfg, run_dir)
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


def write_run_config(cfg: TunegateConfig, run_dir: Path) -> None:
    """``run_dir/config.yaml``: the run's resolved config, replaced atomically (temp file + rename)."""
    tmp = run_dir / f".config.yaml.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    tmp.replace(run_dir / "config.yaml")
