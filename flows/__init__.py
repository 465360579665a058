"""Prefect flows: they wire tasks and branch on their results, nothing else."""

from tunegate.prefect_env import configure as _configure

_configure()
