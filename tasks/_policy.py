"""Retry policy shared by the tasks: retry transient failures only, never bad data or bugs."""

from __future__ import annotations

from tunegate.errors import TransientError

TRANSIENT = (TransientError, ConnectionError, TimeoutError, BlockingIOError, InterruptedError)


def retry_transient(task, task_run, state) -> bool:
    """``retry_condition_fn``: True only when the failure is a transient error."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except Exception:
        return False
    return False


RETRIES = {"retries": 2, "retry_delay_seconds": [2, 10], "retry_condition_fn": retry_transient}
