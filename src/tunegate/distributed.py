"""Data-parallel training in several processes (``hardware.processes > 1``).

The tune stage calls :func:`train` instead of ``method.train``: it writes what the
method needs (settings, token ids, placement) to a spec file, starts one process per
rank (``python -m tunegate.distributed SPEC``) with the torch.distributed environment
that ``accelerate`` reads (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT: gloo on CPUs,
NCCL with one GPU per process), and waits. Every process trains the same method through
the shared loop, which gives each its share of every batch and sums the gradients
across processes (``training._sum_over_processes``), so the update equals one process's
at the same batch size. Only rank 0 writes the artifact and the checkpoints; it
also writes the ``TrainedArtifact`` back for the caller. A failing rank stops the others
and its error is raised here.
"""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tunegate import hardware
from tunegate.errors import TunegateError


class DistributedTrainingError(TunegateError):
    """A training process failed; the message carries its last lines."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(method, *, base_path: str, data, cfg, out_dir: Path, placement, progress: bool = True):
    """Train ``method`` in ``placement.processes`` processes; returns rank 0's ``TrainedArtifact``."""
    n = placement.processes
    work = Path(tempfile.mkdtemp(prefix=".launch-", dir=Path(out_dir).parent))
    procs: list = []
    try:
        spec = work / "spec.pkl"
        result = work / "result.pkl"
        with open(spec, "wb") as f:
            pickle.dump(
                {
                    "method": method.name,
                    "base_path": base_path,
                    "data": data,
                    "cfg": cfg,
                    "out_dir": str(out_dir),
                    "placement": placement,
                    "progress": progress,
                    "result": str(result),
                },
                f,
            )
        port = str(_free_port())
        threads = max(1, hardware.usable_cores() // n) if placement.device == "cpu" else None
        for rank in range(n):
            env = {
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(n),
                "LOCAL_WORLD_SIZE": str(n),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
            }
            if threads is not None:
                env["OMP_NUM_THREADS"] = str(threads)
            # rank 0 talks to the terminal (progress bar, errors); the others' output is kept for an error message
            log = open(work / f"rank{rank}.log", "w")
            out = None if rank == 0 else log
            cmd = [sys.executable, "-m", "tunegate.distributed", str(spec)]
            # each rank dies with this process (PR_SET_PDEATHSIG) even if it is killed outright
            procs.append((subprocess.Popen(cmd, env=env, stdout=out, stderr=out, preexec_fn=die_with_parent()), log))
        failed = None
        for rank, (p, log) in enumerate(procs):
            rc = p.wait()
            log.close()
            if rc != 0 and failed is None:
                failed = (rank, rc)
                for q, _ in procs:
                    if q.poll() is None:
                        q.kill()
        if failed is not None:
            rank, rc = failed
            tail = (work / f"rank{rank}.log").read_text(errors="replace").strip().splitlines()[-15:]
            said = "\n  " + "\n  ".join(tail) if tail else " (its output is above)"
            raise DistributedTrainingError(f"training process {rank} of {n} failed (exit code {rc}):{said}")
        with open(result, "rb") as f:
            return pickle.load(f)
    finally:  # stopped (SIGTERM/SIGINT, an error): no training process outlives the run
        for q, _ in procs:
            if q.poll() is None:
                q.terminate()
        for q, _ in procs:
            try:
                q.wait(timeout=10)
            except subprocess.TimeoutExpired:
                q.kill()
                q.wait()
        shutil.rmtree(work, ignore_errors=True)


def die_with_parent():
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process ends (Linux PR_SET_PDEATHSIG), or
    None where that is not available."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def in_child() -> None:  # after fork, before exec: one system call
        prctl(1, signal.SIGTERM)

    return in_child


def _worker(spec_path: str) -> None:
    with open(spec_path, "rb") as f:
        spec = pickle.load(f)
    import torch

    from tunegate import hardware
    from tunegate.methods import get_method

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    placement = spec["placement"]
    if placement.device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    rank = int(os.environ["RANK"])
    with hardware.using(placement):
        art = get_method(spec["method"]).train(
            base_path=spec["base_path"],
            data=spec["data"],
            cfg=spec["cfg"],
            out_dir=Path(spec["out_dir"]),
            progress=spec["progress"] and rank == 0,
        )
    if rank == 0:
        tmp = spec["result"] + ".tmp"
        with open(tmp, "wb") as f:
            pickle.dump(art, f)
        os.replace(tmp, spec["result"])


if __name__ == "__main__":
    _worker(sys.argv[1])
