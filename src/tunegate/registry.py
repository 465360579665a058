"""A versioned local model registry: ``<root>/<name>/v<N>/`` plus aliases.

Versions are immutable once visible. A version is written completely into a hidden
temp folder, then renamed into place (atomic on one filesystem); aliases live in
``aliases.json``, replaced atomically (write temp + fsync + rename). A file lock
serializes version numbering and alias moves, so two runs finishing at once cannot
take the same number or lose an alias update. A crash at any point leaves the
previous state intact: at worst a ``.tmp-*`` folder that is never listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tunegate.errors import RegistryError

_VERSION_RE = re.compile(r"^v(\d+)$")
PRODUCTION = "production"


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    path: Path
    meta: dict[str, Any]
    aliases: tuple[str, ...]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str) -> None:
    """Write-then-rename: readers see the old file or the new one, never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = 60.0, what: str = "") -> Iterator[None]:
    """An exclusive flock on ``path``, waited for up to ``timeout`` seconds (then a RegistryError naming ``what``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError(f"{what or path} is locked by another process for over {timeout:.0f} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Registry:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ------------------------------------------------------------------ helpers
    def _model_dir(self, name: str) -> Path:
        return self.root / name

    def _locked(self, name: str, timeout: float = 60.0):
        d = self._model_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        return file_lock(d / ".lock", timeout=timeout, what=f"registry {d}")

    def versions(self, name: str) -> list[int]:
        d = self._model_dir(name)
        if not d.is_dir():
            return []
        return sorted(int(m.group(1)) for p in d.iterdir() if (m := _VERSION_RE.match(p.name)) and p.is_dir())

    def aliases(self, name: str) -> dict[str, int]:
        f = self._model_dir(name) / "aliases.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    # ------------------------------------------------------------------ writes
    def register(self, name: str, *, files: dict[str, str], dirs: dict[str, Path], meta: dict[str, Any]) -> VersionInfo:
        """Add a new immutable version holding ``files`` (name -> text) and copies of ``dirs``.

        The content is fully written before the version becomes visible.
        """
        d = self._model_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=d))
        try:
            for rel, src in dirs.items():
                shutil.copytree(src, tmp / rel)
            for rel, text in files.items():
                (tmp / rel).write_text(text)
            with self._locked(name):
                version = (self.versions(name) or [0])[-1] + 1
                meta = {**meta, "name": name, "version": version, "registered_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
                for f in tmp.rglob("*"):
                    if f.is_file():
                        with open(f, "rb") as fh:
                            os.fsync(fh.fileno())
                target = d / f"v{version}"
                os.rename(tmp, target)
                _fsync_dir(d)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(name, version)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", alias):
            raise RegistryError(f"alias '{alias}' is not a valid name (letters, digits, _ and -, starting with a letter)")
        with self._locked(name):
            if version not in self.versions(name):
                raise RegistryError(f"{name} has no version {version}; versions: {self.versions(name)}")
            current = self.aliases(name)
            history = current.pop("_history", [])
            history.append({"alias": alias, "from": current.get(alias), "to": version, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            current[alias] = version
            current["_history"] = history
            atomic_write_text(self._model_dir(name) / "aliases.json", json.dumps(current, indent=2))

    # ------------------------------------------------------------------ reads
    def get(self, name: str, version: int) -> VersionInfo:
        path = self._model_dir(name) / f"v{version}"
        if not path.is_dir():
            raise RegistryError(f"{name} has no version {version}; versions: {self.versions(name) or 'none'}")
        meta = json.loads((path / "meta.json").read_text())
        aliases = tuple(a for a, v in self.aliases(name).items() if not a.startswith("_") and v == version)
        return VersionInfo(name=name, version=version, path=path, meta=meta, aliases=aliases)

    def resolve(self, ref: str) -> VersionInfo:
        """``name``, ``name@alias``, ``name@3`` or ``name@v3`` -> a version (bare name = production)."""
        name, _, sel = ref.partition("@")
        sel = sel or PRODUCTION
        if name not in self.models():
            known = ", ".join(self.models()) or "none"
            raise RegistryError(f"no model '{name}' in registry {self.root} (models: {known})")
        m = re.match(r"^v?(\d+)$", sel)
        if m:
            return self.get(name, int(m.group(1)))
        aliases = self.aliases(name)
        if sel not in aliases or sel.startswith("_"):
            names = [a for a in aliases if not a.startswith("_")]
            hint = f"aliases: {', '.join(names)}" if names else "no alias is set yet (no version has been promoted)"
            raise RegistryError(f"{name} has no alias '{sel}' ({hint}); use {name}@<version> to pick a version")
        return self.get(name, aliases[sel])

    def list(self) -> list[VersionInfo]:
        return [self.get(n, v) for n in self.models() for v in self.versions(n)]
