"""Environment defaults for running Prefect embedded (set before Prefect is imported).

This module sets environment variables (and quiets one offline warning); it does not
import Prefect, so the library stays orchestrator-free.
"""

from __future__ import annotations

import os
from pathlib import Path


def configure() -> None:
    """Embedded by default: no server to start, state under ./.tunegate/prefect, no telemetry.

    With ``PREFECT_API_URL`` set, Prefect talks to that server instead and these
    defaults only affect local result storage.
    """
    os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".tunegate" / "prefect"))
    # Prefect creates PREFECT_HOME itself but not its parents
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)
    # the telemetry job of the temporary server logs "database is locked" tracebacks
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tunegate.modeling import quiet_offline_kernel_fetch  # a worker's flows start here, not in the CLI

    quiet_offline_kernel_fetch()
