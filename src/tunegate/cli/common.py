"""What every command group shares: config loading with --set overrides, the --registry option, number formatting."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

from tunegate.errors import TunegateError


def with_registry(sp) -> None:
    sp.add_argument("--registry", metavar="PATH", help="registry root (default: $TUNEGATE_REGISTRY or ./registry)")


def with_config(sp) -> None:
    sp.add_argument("config", type=Path, metavar="CONFIG", help="YAML config (see examples/quickstart/config.yaml)")
    sp.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted key, e.g. --set method.epochs=2 (repeatable); "
        "--set method.name=X switches the method, keeping only the settings X shares with the configured one",
    )


def parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise TunegateError(f"--set {item!r}: expected KEY=VALUE, e.g. --set method.epochs=2")
        key, _, value = item.partition("=")
        if not key.strip() or any(not part.strip() for part in key.split(".")):
            raise TunegateError(
                f"--set {item!r}: the key before '=' is empty or has an empty part; give a dotted config key, "
                "e.g. --set method.epochs=2"
            )
        try:
            parsed = yaml.safe_load(value)  # "2" -> 2, "true" -> True, "[a, b]" -> list, "null" -> None
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, dict) and not value.lstrip().startswith("{"):
            parsed = value  # "Text: " is a string with a colon, not a mapping
        out[key.strip()] = parsed
    return out


def load(args) -> Any:
    from tunegate import hardware
    from tunegate.config import load_config
    from tunegate.modeling import check_model

    args.overrides = parse_set(args.set)
    notes: list[str] = []
    cfg = load_config(args.config, args.overrides, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    check_model(cfg.model, config_dir=cfg.config_dir)
    hardware.resolve(cfg.hardware)  # a device or dtype this machine cannot run: one message, before any stage
    for key, folder in (("output.dir", cfg.output.dir), ("registry.path", Path(cfg.registry.path))):
        check_writable_folder(key, folder)
    return cfg


def check_writable_folder(key: str, folder: Path) -> None:
    """``folder`` is (or can become) a folder this user can write: else one ConfigError naming ``key``."""
    from tunegate.errors import ConfigError

    existing = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        what = "is" if existing == folder else f"is inside {existing}, which is"
        raise ConfigError(f"{key} {folder} {what} a file, not a folder; point {key} at a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{key} {folder}: {existing} is not writable by this user; point {key} at a folder it can write"
        )
    import tempfile

    try:  # os.access says yes to root everywhere, /proc and read-only mounts included: try it
        os.rmdir(tempfile.mkdtemp(prefix=".tunegate-write-check-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"{key} {folder}: nothing can be created in {existing} ({exc.strerror or exc}); point {key} at a "
            "folder on a writable disk"
        ) from None


def registry_root(args) -> Path:
    if args.registry:
        return Path(args.registry)
    return Path(os.environ.get("TUNEGATE_REGISTRY", "registry"))


def fmt(x, spec: str = ".3f", none: str = "-") -> str:
    return none if x is None else format(x, spec)
