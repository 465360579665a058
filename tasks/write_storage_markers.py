from prefect import task
from prefect.cache_policies import NO_CACHE

from tunegate import shared_storage


@task(name="write_storage_markers", cache_policy=NO_CACHE)
def write_storage_markers(run_dir: str, model_path: str, registry: str, token: str) -> dict:
    """On a Dask worker: a marker in the run folder, the model's folder and the registry, which the flow's process
    then reads back (``_runner.check_shared_storage``); returns the worker's host."""
    import socket

    shared_storage.write_markers(shared_storage.folders(run_dir, model_path, registry), token)
    return {"host": socket.gethostname()}
