"""Prefect tasks: thin wrappers over ``tunegate.stages``, one public @task per module.

Inputs and outputs are small typed records (paths, hashes, metrics). Retries are for
transient failures only; cache policy is declared on the decorator.
"""

from tunegate.prefect_env import configure as _configure

_configure()
