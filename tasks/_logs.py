"""The library's log lines (progress bars included) in the Prefect run's logs.

The library logs to the standard ``tunegate`` loggers and knows nothing of Prefect; here the
tasks package adds Prefect's API log handler to that logger, so what a stage logs inside a task
(``score few_shot: 96/308 ex (31%), 12.4 ex/s, ~17 s left``) shows under that task run in the UI
and in ``prefect flow-run logs``. Records logged outside any flow or task run are not sent.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler


class _InRun(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return TaskRunContext.get() is not None or FlowRunContext.get() is not None


class LibraryLogHandler(APILogHandler):
    """Prefect's API handler, for records emitted inside a run only."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.addFilter(_InRun())


def forward_library_logs() -> None:
    """Attach the handler to the ``tunegate`` logger (once per process)."""
    lib = logging.getLogger("tunegate")
    if not any(isinstance(h, LibraryLogHandler) for h in lib.handlers):
        lib.addHandler(LibraryLogHandler())
    if lib.level == logging.NOTSET or lib.level > logging.INFO:
        lib.setLevel(logging.INFO)
