"""Hashes and versions that make every result traceable (code, packages, data, files)."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

import tunegate

_PACKAGES = ("torch", "transformers", "peft", "bitsandbytes", "evaluate", "prefect", "pandera", "polars", "pydantic")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a hash of the library and schema sources.

    Any code change changes it, which invalidates cached task results (a cached
    baseline must never outlive the code that computed it).
    """
    roots = [Path(tunegate.__file__).parent]
    schemas_dir = roots[0].parent.parent / "schemas"
    if schemas_dir.is_dir():
        roots.append(schemas_dir)
    h = hashlib.sha256()
    for root in roots:
        for f in sorted(root.rglob("*.py")):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return f"{tunegate.__version__}+{h.hexdigest()[:12]}"


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_provenance(run, dataset) -> dict[str, Any]:
    """Where a decision came from: the run, the data, the config, the code, the packages and the base model."""
    return {
        "run_id": run.run_id,
        "data_hash": dataset.data_hash,
        "n_train": dataset.n_train,
        "n_eval": dataset.n_eval,
        "config_hash": run.config_hash,
        "code_version": code_version(),
        "packages": package_versions(),
        "model_id": run.model_id,
        "model_spec": run.model_spec,
        "model_sha": run.model_sha,
        "train_mean": dataset.train_mean,  # regression: what an answer without a number counted as
        "hardware": run.placement.model_dump(),  # which device and precision path ran
    }
