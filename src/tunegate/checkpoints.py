"""Resumable training state: written atomically, checked before it is trusted.

A checkpoint is a folder ``step-0000012/`` holding ``state.pt`` (the trainable weights,
the optimizer and LR-scheduler state, the RNG states, the data order and position, the
loss history) and ``manifest.json`` (its size and sha256, the step, and the key of the
run it belongs to). It is written into a hidden temporary folder and renamed into place,
so a kill at any moment leaves either the whole checkpoint or none. On load, a folder
whose manifest is missing, whose state does not match its size or hash, or which
belongs to another run (different data, settings or number of processes: another
``key``) is skipped with a warning, never loaded; the newest good one wins.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from tunegate.provenance import sha256_file
from tunegate.registry import fsync_path

FORMAT = 1
STATE = "state.pt"
MANIFEST = "manifest.json"
KEEP = 2  # newest checkpoints kept; older ones are removed once a newer one is in place
_STEP_RE = re.compile(r"^step-(\d+)$")


class CheckpointWarning(UserWarning):
    """A checkpoint was found but not trusted (truncated, corrupted, or from another run)."""


_fsync = fsync_path  # (a module name of its own: the fault-injection test replaces it here)


def steps(root: Path) -> list[tuple[int, Path]]:
    """The checkpoint folders under ``root``, oldest first."""
    if not Path(root).is_dir():
        return []
    found = [(int(m.group(1)), p) for p in Path(root).iterdir() if (m := _STEP_RE.match(p.name)) and p.is_dir()]
    return sorted(found)


def save(root: Path, step: int, key: str, state: dict[str, Any], keep: int = KEEP) -> Path:
    """Write ``state`` as the checkpoint of optimizer step ``step``; returns its folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # a write that was killed half-way: never visible, now removed
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        torch.save(state, tmp / STATE)
        _fsync(tmp / STATE)
        manifest = {
            "format": FORMAT,
            "step": step,
            "key": key,
            "bytes": (tmp / STATE).stat().st_size,
            "sha256": sha256_file(tmp / STATE),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync(tmp / MANIFEST)
        target = root / f"step-{step:07d}"
        if target.exists():  # the same step saved again (a resumed run reaching an epoch end it had saved)
            shutil.rmtree(target)
        os.rename(tmp, target)
        _fsync(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in steps(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def problem(folder: Path, key: str) -> str | None:
    """Why the checkpoint in ``folder`` must not be loaded, or None when it is whole and belongs to this run."""
    mf = folder / MANIFEST
    if not mf.is_file():
        return "no manifest (the write did not finish)"
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    if manifest.get("format") != FORMAT:
        return f"format {manifest.get('format')}, this version reads {FORMAT}"
    if manifest.get("key") != key:
        return "it belongs to another training run (different data, settings or number of processes)"
    state = folder / STATE
    if not state.is_file():
        return f"{STATE} is missing"
    if state.stat().st_size != manifest.get("bytes"):
        return f"{STATE} is {state.stat().st_size} bytes, the manifest says {manifest.get('bytes')} (truncated)"
    if sha256_file(state) != manifest.get("sha256"):
        return f"{STATE} does not match its sha256 (corrupted)"
    return None


def latest(root: Path, key: str, map_location: Any = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint under ``root`` that is whole and belongs to run ``key``, loaded; None if there is none.
    Each newer one that is not trusted is skipped with a :class:`CheckpointWarning` saying why."""
    for _, folder in reversed(steps(root)):
        why = problem(folder, key)
        if why is None:
            try:
                return folder, torch.load(folder / STATE, map_location=map_location, weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a checkpoint that does not load is skipped like a bad one
                why = f"it does not load ({type(exc).__name__}: {exc})"
        warnings.warn(f"skipping checkpoint {folder}: {why}", CheckpointWarning, stacklevel=2)
    return None
