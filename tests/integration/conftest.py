import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def prefect_env(tmp_path_factory) -> dict:
    """An environment for `tunegate` subprocesses: embedded Prefect with its own home."""
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def run_cli(args, *, env, cwd, timeout=1200) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "tunegate.cli", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )
    # keep the output visible in the test log when something fails
    sys.stdout.write(out.stdout[-4000:])
    sys.stderr.write(out.stderr[-4000:])
    return out
