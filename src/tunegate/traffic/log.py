"""The request log of ``tunegate serve``: one JSON line per answered input, append-only, rotated by size.

Beside the registry by default (``<registry>/_traffic/<model name>/``: a name no model can have):
``requests.jsonl`` is the file being written; when it reaches ``serve.log_rotate_mb`` it is renamed
``requests-<UTC time>.jsonl`` (to the microsecond: the names sort in time order; never rewritten) and a new one
starts. ``feedback.jsonl`` holds the truth sent later (``POST /v1/feedback``), one line per feedback, keyed by the
request id. A line cut short by a crash is skipped when read.

A request line: ``id``, ``at`` (UTC), ``model`` (the name), ``ref`` (what the request named), ``version`` (the
version that answered), ``route`` (``production``, ``canary`` or ``direct``: a request that named a version),
``endpoint``, ``input`` (null with ``serve.log_inputs: false``), ``input_sha256``, ``input_chars``, ``answer``
(label, number or text), ``confidence`` (classification: the label's probability), ``latency_ms``, and with a
shadow ``shadow: {version, answer, confidence, latency_ms}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TRAFFIC = "_traffic"  # under the registry root: not a valid model name, so never listed as one
CURRENT = "requests.jsonl"
FEEDBACK = "feedback.jsonl"


def traffic_dir(registry_root: str | Path, name: str, log_dir: str | Path | None = None) -> Path:
    """Where a model's request log lives: ``log_dir/<name>`` when set, else ``<registry>/_traffic/<name>``."""
    return Path(log_dir) / name if log_dir else Path(registry_root) / TRAFFIC / name


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class AppendLog:
    """Append-only JSON lines, one writer lock, rotated when the current file reaches ``rotate_bytes``."""

    def __init__(self, folder: Path, filename: str, rotate_bytes: int | None = None):
        self.folder, self.filename, self.rotate_bytes = Path(folder), filename, rotate_bytes
        self.lock = threading.Lock()
        self.rotations = 0

    @property
    def path(self) -> Path:
        return self.folder / self.filename

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self.lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if self.rotate_bytes and self.path.exists() and self.path.stat().st_size + len(line) > self.rotate_bytes:
                self._rotate()
            with open(self.path, "a", encoding="utf-8") as f:  # one write per line: O_APPEND keeps lines whole
                f.write(line)

    def _rotate(self) -> None:
        stem = self.filename.removesuffix(".jsonl")
        now = time.time()
        stamp = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.{int(now * 1e6) % 1_000_000:06d}Z"
        target = self.folder / f"{stem}-{stamp}.jsonl"  # names sort in time order
        while target.exists():
            time.sleep(1e-6)
            return self._rotate()
        os.replace(self.path, target)
        self.rotations += 1


class RequestLog:
    """What a server writes for one model name: its requests and the feedback on them."""

    def __init__(self, folder: Path, *, log_inputs: bool = True, rotate_mb: float = 64.0):
        self.folder = Path(folder)
        self.log_inputs = log_inputs
        self.requests = AppendLog(self.folder, CURRENT, int(rotate_mb * 2**20))
        self.feedback = AppendLog(self.folder, FEEDBACK)

    def request(self, *, text: str, **fields: Any) -> None:
        self.requests.append(
            {
                "at": _utc(time.time()),
                **fields,
                "input": text if self.log_inputs else None,
                "input_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "input_chars": len(text),
            }
        )

    def add_feedback(self, request_id: str, *, label: Any = None, reference: Any = None) -> None:
        self.feedback.append({"id": request_id, "at": _utc(time.time()), "label": label, "reference": reference})


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a crash
                continue
            if isinstance(rec, dict):
                yield rec


def read_requests(folder: Path) -> list[dict[str, Any]]:
    """Every logged request, rotated files first (oldest first), then the current file."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("requests-*.jsonl")) + (
        [folder / CURRENT] if (folder / CURRENT).exists() else []
    )
    return [rec for p in files for rec in _lines(p)]


def read_feedback(folder: Path) -> dict[str, dict[str, Any]]:
    """The latest feedback per request id."""
    path = Path(folder) / FEEDBACK
    return {rec["id"]: rec for rec in _lines(path) if "id" in rec} if path.exists() else {}
