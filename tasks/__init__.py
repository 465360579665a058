"""Prefect tasks: thin wrappers over ``tunegate.stages``, one public @task per module.

Inputs and outputs are small typed records (paths, hashes, metrics). Retries are for
transient failures only; cache policy is declared on the decorator. The library's log
lines, progress bars included, go to the Prefect run logs (``_logs``).
"""

from tunegate.prefect_env import configure as _configure

_configure()

from tunegate.tasks._logs import forward_library_logs as _forward  # noqa: E402

_forward()
