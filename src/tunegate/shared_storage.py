"""Is the run's storage shared with the task runner's workers? (``orchestration.task_runner: dask``)

A task on a worker reads its inputs from, and writes its outputs to, the run folder, the model (the converted
model in the cache, or the model folder) and the registry; on a cluster those must be one storage that every
worker and the flow's process see at the same paths (NFS, CephFS, EFS, a ReadWriteMany volume). The check: a
worker writes a marker file into each (:func:`write_markers`), then the flow's process reads them back
(:func:`read_markers`); a folder the worker cannot write, or a marker the flow cannot read, is one clear error.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from tunegate.errors import TunegateError

MARKER = ".tunegate-worker-{token}.json"


def folders(run_dir: str, model_path: str, registry: str) -> dict[str, Path]:
    """What must be shared, by what it holds (the model: its folder; a registry not created yet: the folder it
    will be created in, so that checking creates nothing: `tunegate compare` registers nothing)."""
    model, reg = Path(model_path), Path(registry)
    while not reg.exists() and reg.parent != reg:
        reg = reg.parent
    return {"run folder": Path(run_dir), "model": model if model.is_dir() else model.parent, "registry": reg}


def write_markers(places: dict[str, Path], token: str) -> dict[str, str]:
    """On a worker: a marker in each folder, naming this worker (host, pid); the folders' paths as written."""
    me = {"host": socket.gethostname(), "pid": os.getpid(), "token": token}
    written = {}
    for what, folder in places.items():
        try:
            (folder / MARKER.format(token=token)).write_text(json.dumps(me))
        except OSError as exc:
            raise TunegateError(
                f"orchestration: a Dask worker on {me['host']} cannot write the {what} {folder} ({exc.strerror}); "
                "the run folder, the model cache and the registry must be on storage every worker can write at "
                "the same paths (an NFS/CephFS/EFS mount, a ReadWriteMany volume)"
            ) from None
        written[what] = str(folder)
    return written


def read_markers(places: dict[str, Path], token: str, worker_host: str) -> None:
    """In the flow's process: every marker the worker wrote is here (then removed); else what is not shared."""
    missing = [
        f"the {what} {folder}" for what, folder in places.items() if not (folder / MARKER.format(token=token)).is_file()
    ]
    for folder in places.values():
        (folder / MARKER.format(token=token)).unlink(missing_ok=True)
    if missing:
        raise TunegateError(
            f"orchestration: a Dask worker on {worker_host} wrote a marker that this process cannot see in "
            + ", ".join(missing)
            + ": the worker's files are not this machine's. Put the run folder (output.dir), the model cache "
            "(TUNEGATE_CACHE, default ~/.cache/tunegate) and the registry on storage shared by the flow and every "
            "worker, at the same paths, or use task_runner: sequential"
        )
