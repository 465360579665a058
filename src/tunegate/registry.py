"""A versioned local model registry: ``<root>/<name>/v<N>/`` plus aliases.

Versions are immutable once visible. A version is written completely into a hidden
temp folder, then renamed into place (atomic on one filesystem); its files are made
read-only and their sha256 recorded in ``meta.json`` (``manifest``), so a changed
file is detected (``Registry.verify``) before a version is promoted or served.
Aliases live in ``aliases.json``, replaced atomically (write temp + fsync + rename),
with every move kept in its ``_history`` (who, when, why, promote or rollback). A
file lock serializes version numbering and alias moves, so two runs finishing at
once cannot take the same number or lose an alias update; an alias move may name
the target it expects to replace (compare-and-set), so a run that compared itself
with production v2 cannot silently overwrite a v3 promoted meanwhile. A crash at
any point leaves the previous state intact: at worst a ``.tmp-*`` folder that is
never listed.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tunegate.errors import RegistryError

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # a folder name: no '/', no '..', no spaces or control chars
MODEL_NAME_MAX = 100  # a folder name holds 255 bytes; the lock and temporary names around it add to it
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]*$"


def _is_model_dir(path: Path) -> bool:
    """A model's folder holds its aliases or a version folder (the audit log's evidence folder holds neither)."""
    return (path / "aliases.json").exists() or any(re.fullmatch(r"v\d+", c.name) for c in path.iterdir())


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name, else a RegistryError saying the rule."""
    if not re.fullmatch(MODEL_NAME_PATTERN, name or "") or len(name) > MODEL_NAME_MAX:
        raise RegistryError(
            f"{name[:120]!r} is not a valid model name (letters, digits, '.', '_' and '-', starting with a letter or "
            f"digit, at most {MODEL_NAME_MAX} characters)"
        )
    return name


def check_alias(alias: str) -> str:
    """``alias`` if it is a valid alias, else a RegistryError saying the rule."""
    if not re.fullmatch(ALIAS_PATTERN, alias or ""):
        raise RegistryError(f"alias {alias!r} is not a valid name (letters, digits, _ and -, starting with a letter)")
    return alias


_VERSION_RE = re.compile(r"^v(\d+)$")
PRODUCTION = "production"


UNSET: Any = object()  # `set_alias(expect=...)` not given: move whatever the alias points at


def _manifest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except meta.json (which holds the manifest)."""
    out = {}
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.relative_to(root).as_posix() != "meta.json":
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            out[f.relative_to(root).as_posix()] = h.hexdigest()
    return out


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "unknown"


@dataclass(frozen=True)
class VersionInfo:
    """A registered version: name, number, folder and its meta.json."""

    name: str
    version: int
    path: Path
    meta: dict[str, Any]
    aliases: tuple[str, ...]


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder: so a rename in it is durable)."""
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
        fsync_path(path.parent)
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
                    raise RegistryError(
                        f"{what or path} is locked by another process for over {timeout:.0f} s"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Registry:
    """Immutable model versions with aliases (production, ...) under one folder, written atomically under a lock."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise RegistryError(
                f"registry {self.root} is a file, not a folder; point --registry / registry.path at a folder"
            )

    # ------------------------------------------------------------------ helpers
    def _model_dir(self, name: str) -> Path:
        return self.root / check_model_name(name)

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
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir() and re.fullmatch(MODEL_NAME_PATTERN, p.name) and _is_model_dir(p)
        )

    # ------------------------------------------------------------------ writes
    def register(
        self,
        name: str,
        *,
        files: dict[str, str | Path],
        dirs: dict[str, Path],
        meta: dict[str, Any],
        exclude: tuple[str, ...] = (),
    ) -> VersionInfo:
        """Add a new immutable version holding ``files`` (name -> text, or a Path to copy) and copies of ``dirs``
        (without the files and folders named in ``exclude``, at any depth).

        The content is fully written before the version becomes visible.
        """
        d = self._model_dir(name)
        d.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=d))
        try:
            for rel, src in dirs.items():
                shutil.copytree(src, tmp / rel, ignore=shutil.ignore_patterns(*exclude) if exclude else None)
            for rel, content in files.items():
                if isinstance(content, Path):
                    shutil.copyfile(content, tmp / rel)
                else:
                    (tmp / rel).write_text(content)
            manifest = _manifest(tmp)
            with self._locked(name):
                version = (self.versions(name) or [0])[-1] + 1
                meta = {
                    **meta,
                    "name": name,
                    "version": version,
                    "registered_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "manifest": manifest,
                }
                (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
                for f in tmp.rglob("*"):
                    if f.is_file():
                        with open(f, "rb") as fh:
                            os.fsync(fh.fileno())
                        f.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # immutable contents: read-only files
                target = d / f"v{version}"
                os.rename(tmp, target)
                fsync_path(d)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.get(name, version)

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        expect: Any = UNSET,
        action: str = "set",
        reason: str = "",
        details: dict[str, Any] | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version`` atomically; returns the previous target.

        ``expect``: the version the caller believes the alias points at now (None: unset). If
        another run moved it meanwhile, nothing changes and a RegistryError says so.
        """
        check_alias(alias)
        with self._locked(name):
            if version not in self.versions(name):
                raise RegistryError(f"{name} has no version {version}; versions: {self.versions(name)}")
            current = self.aliases(name)
            history = current.pop("_history", [])
            before = current.get(alias)
            if expect is not UNSET and before != expect:
                was = f"v{expect}" if expect is not None else "unset"
                now = f"v{before}" if before is not None else "unset"
                raise RegistryError(
                    f"{name}@{alias} moved from {was} to {now} while this run was comparing against {was}; "
                    f"not moved to v{version} (run again to compare against {now})"
                )
            history.append(
                {
                    "alias": alias,
                    "from": before,
                    "to": version,
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "action": action,
                    "by": current_user(),
                    "reason": reason,
                    **(details or {}),
                }
            )
            current[alias] = version
            current["_history"] = history
            atomic_write_text(self._model_dir(name) / "aliases.json", json.dumps(current, indent=2))
            return before

    def history(self, name: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Every alias move of ``name`` (oldest first), optionally of one alias."""
        hist = self.aliases(name).get("_history", [])
        return [h for h in hist if alias is None or h["alias"] == alias]

    def rollback_target(self, name: str, alias: str = PRODUCTION) -> int:
        """The version ``alias`` pointed at before its current target was set (rollbacks unwind, like a stack)."""
        stack: list[int] = []
        for h in self.history(name, alias):
            if h.get("action") == "rollback" and stack:
                stack.pop()
                if not stack or stack[-1] != h["to"]:
                    stack.append(h["to"])
            else:
                stack.append(h["to"])
        current = self.aliases(name).get(alias)
        if current is None:
            raise RegistryError(f"{name} has no alias '{alias}': nothing to roll back")
        while stack and stack[-1] == current:
            stack.pop()
        if not stack:
            raise RegistryError(
                f"{name}@{alias} (v{current}) has no earlier version to roll back to; "
                f"use `tunegate registry promote {name}@<version>` to choose one"
            )
        return stack[-1]

    def verify(self, name: str, version: int) -> list[str]:
        """Problems with a version's files against the sha256 manifest written at registration (empty: intact)."""
        info = self.get(name, version)
        recorded = info.meta.get("manifest")
        if recorded is None:
            return []  # registered before manifests existed: nothing to check against
        actual = _manifest(info.path)
        problems = [f"{f}: changed since registration" for f in recorded if f in actual and actual[f] != recorded[f]]
        problems += [f"{f}: missing" for f in recorded if f not in actual]
        problems += [f"{f}: added after registration" for f in actual if f not in recorded]
        return problems

    def require_intact(self, name: str, version: int, *, doing: str) -> None:
        """Raise a RegistryError naming the changed files unless ``verify`` finds none."""
        problems = self.verify(name, version)
        if problems:
            raise RegistryError(
                f"{name} v{version}'s files changed after registration ({'; '.join(problems[:5])}); not {doing} it"
            )

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
        check_model_name(name)
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
