"""A run's identity and folder: the resolved base model, the run id, the resolved config written beside it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import yaml

from tunegate import hardware
from tunegate.config import TunegateConfig
from tunegate.errors import OutputError, ResumeError
from tunegate.modeling import resolve_model
from tunegate.records import RunContext
from tunegate.registry import atomic_write_text

RUN_JSON = "run.json"  # the run's RunContext, read back by `--resume`


def start_run(cfg: TunegateConfig) -> RunContext:
    """Resolve the base model (converting a GGUF once), create ``<output.dir>/<run-id>/`` and write config.yaml."""
    model = resolve_model(cfg.model, config_dir=cfg.config_dir)
    placement = hardware.resolve(cfg.hardware)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = (cfg.output.dir / run_id).resolve()
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        write_run_config(cfg.model_dump(mode="json"), run_dir)
    except OSError as exc:
        where = next((p for p in [cfg.output.dir, *cfg.output.dir.parents] if p.exists()), cfg.output.dir)
        what = "is a file, not a folder" if where.is_file() else f"cannot be written ({exc.strerror})"
        raise OutputError(
            f"output.dir {cfg.output.dir}: {where} {what}; point output.dir at a folder this user can write"
        ) from None
    run = RunContext(
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
    atomic_write_text(run_dir / RUN_JSON, run.model_dump_json(indent=2))
    return run


def resume_run(cfg: TunegateConfig, run_id: str) -> RunContext:
    """The run ``run_id`` under ``output.dir``, to be run again from its checkpoints (``tunegate run --resume``):
    the same folder, config, base model and hardware, or a :class:`ResumeError` saying what differs."""
    run_dir = (cfg.output.dir / run_id).resolve()
    if not (run_dir / RUN_JSON).is_file():
        known = sorted(p.parent.name for p in cfg.output.dir.glob(f"*/{RUN_JSON}"))[-5:]
        raise ResumeError(
            f"--resume {run_id}: {run_dir / RUN_JSON} does not exist, so there is no run to resume there. "
            f"Runs under {cfg.output.dir}: {', '.join(known) or 'none'} (the run id is the run folder's name)."
        )
    run = RunContext.model_validate_json((run_dir / RUN_JSON).read_text())
    if cfg.config_hash() != run.config_hash:
        raise ResumeError(
            f"--resume {run_id}: the config differs from the one that run started with ({run_dir / 'config.yaml'}); "
            "a run resumes with the same config file and --set values. Start a new run to use the new config."
        )
    model = resolve_model(cfg.model, config_dir=cfg.config_dir)
    if model.sha != run.model_sha:
        raise ResumeError(f"--resume {run_id}: the base model {cfg.model} changed since that run started")
    placement = hardware.resolve(cfg.hardware)
    if placement.model_dump(exclude={"reason"}) != run.placement.model_dump(exclude={"reason"}):
        raise ResumeError(
            f"--resume {run_id}: that run trained on {run.placement.describe()}, this machine resolves "
            f"hardware to {placement.describe()}; resume on the same kind of machine, or set hardware: to match"
        )
    if (run_dir / "deployment.json").is_file():
        raise ResumeError(f"--resume {run_id}: that run completed (deployment.json exists); nothing to resume")
    return run.model_copy(update={"model_path": model.path})


def write_run_config(config: dict, run_dir: Path) -> None:
    """``run_dir/config.yaml``: the run's resolved config (``config``: its JSON dump), replaced atomically (temp
    file + rename)."""
    tmp = run_dir / f".config.yaml.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(run_dir / "config.yaml")
