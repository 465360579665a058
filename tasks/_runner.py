"""Where a flow's independent task runs execute (``orchestration.task_runner``).

A flow opens :func:`task_runner` once, after validation; inside it the task helpers (``evaluate_ladder``,
``train_seeds``, ``compare_methods_run``, the forecast's fractions) hand each task run to :func:`submit`:

* ``sequential``: the task runs at once, in this process, as it always did (same order, same errors);
* ``dask``: it is submitted to prefect-dask's ``DaskTaskRunner`` (a local cluster of ``workers`` processes, or the
  scheduler at ``address``) and runs when its inputs are ready; the helpers submit everything independent first
  and collect after, so rungs, methods, seeds and fractions run on several workers at once.

Tasks pass small records (paths, hashes, metrics) and load their model from the run folder and the model cache,
so no live model crosses a process; the check at start (a worker writes a marker, this process reads it) makes
sure those folders are shared. Each worker runs one task at a time with ``threads_per_worker`` torch threads.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from tunegate.config import TunegateConfig
from tunegate.errors import TunegateError
from tunegate.records import RunContext

_RUNNER: contextvars.ContextVar[Any] = contextvars.ContextVar("tunegate_task_runner", default=None)


class Ran:
    """A task run that already happened in this process (sequential), shaped like a Prefect future."""

    def __init__(self, state=None, *, upstream_failed: bool = False):
        self.state, self.upstream_failed = state, upstream_failed

    def wait(self) -> None:
        pass

    def result(self):
        return self.state.result()


def _resolved(value):
    """A sequential run's parameter: an earlier run's result in place of its :class:`Ran`."""
    if isinstance(value, Ran):
        return value.result()
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def submit(task, *, fail_fast: bool = False, **parameters):
    """Run ``task`` now (sequential) or on a worker (dask); returns a future (``.result()``, ``.state``). An earlier
    future among the parameters is its result: the run waits for it. A sequential run whose input failed is not
    run (``upstream_failed``); a dask one ends in Prefect's NotReady state. ``fail_fast``: a sequential failure
    raises at once (the caller would raise at its first ``.result()`` anyway: nothing after it runs for nothing)."""
    runner = _RUNNER.get()
    if runner is not None:
        return runner.submit(task, parameters)
    inputs = [v for v in parameters.values() if isinstance(v, Ran)]
    if any(r.upstream_failed or r.state.is_failed() for r in inputs):
        return Ran(upstream_failed=True)
    parameters = {k: _resolved(v) for k, v in parameters.items()}
    if fail_fast:  # called as the flows always called tasks: an exception (a stop signal too) propagates at once
        from prefect.states import Completed

        return Ran(Completed(data=task(**parameters)))
    return Ran(task(**parameters, return_state=True))


def failed(future) -> bool:
    """The task run failed, or never ran because an input failed."""
    if isinstance(future, Ran):
        return future.upstream_failed or future.state.is_failed()
    future.wait()
    return not future.state.is_completed()


def parallel() -> bool:
    """Task runs go to workers (a dask runner is open)."""
    return _RUNNER.get() is not None


def torch_threads(n: int):
    """A Dask worker plugin: the worker's torch uses ``n`` threads (a worker process starts with OMP_NUM_THREADS=1).
    Built here so that importing this module imports no Dask."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class TorchThreads(WorkerPlugin):
        name = "tunegate-torch-threads"

        def setup(self, worker) -> None:
            import torch

            torch.set_num_threads(n)

    return TorchThreads()


def dask_runner(cfg: TunegateConfig):
    """prefect-dask's runner: the scheduler at ``address``, or a local cluster whose workers report to this flow's
    Prefect API (else each would start a temporary server of its own) with quiet Dask logs."""
    import logging

    from prefect.client.orchestration import get_client

    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise TunegateError(
            "orchestration.task_runner: dask needs prefect-dask, which is not installed here: "
            "pip install 'tunegate[cluster]' (or `make setup`), or set task_runner: sequential"
        ) from None

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines would bury the run's
    o = cfg.orchestration
    if o.address:
        return DaskTaskRunner(address=o.address)
    with get_client(sync_client=True) as client:
        api = str(client.api_url)
    env = {
        "PREFECT_API_URL": api,
        "OMP_NUM_THREADS": str(o.threads_per_worker),
        "DASK_LOGGING__DISTRIBUTED": "warning",
    }
    local = dict(n_workers=o.workers, threads_per_worker=1, processes=True, dashboard_address=None, env=env)
    return DaskTaskRunner(cluster_kwargs=local)


@contextlib.contextmanager
def task_runner(cfg: TunegateConfig, run: RunContext) -> Iterator[None]:
    """The flow's independent task runs go where ``orchestration`` says until the block ends (a local cluster is
    started here and stopped at the end)."""
    if cfg.orchestration.task_runner == "sequential":
        yield
        return
    runner = dask_runner(cfg)
    with runner:
        client = runner.client  # the cluster starts (or is connected to) here
        client.register_plugin(torch_threads(cfg.orchestration.threads_per_worker))
        workers = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        print(f"task runner: dask, {workers} workers x {cfg.orchestration.threads_per_worker} torch threads")
        token = _RUNNER.set(runner)
        try:
            check_shared_storage(cfg, run)
            yield
        finally:
            _RUNNER.reset(token)


def check_shared_storage(cfg: TunegateConfig, run: RunContext) -> None:
    """A worker writes markers, this process reads them back (``tunegate.shared_storage``); raises when the run
    folder, the model or the registry is not storage the two share."""
    import uuid

    from tunegate import shared_storage
    from tunegate.tasks.write_storage_markers import write_storage_markers

    token = uuid.uuid4().hex[:12]
    where = dict(run_dir=run.run_dir, model_path=run.model_path, registry=str(cfg.registry.path))
    wrote = submit(write_storage_markers, **where, token=token).result()  # a worker that cannot write raises here
    shared_storage.read_markers(shared_storage.folders(**where), token, wrote["host"])
