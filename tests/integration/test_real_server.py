"""`tunegate run` against a real Prefect server (PREFECT_API_URL), not the embedded one."""

import json
import urllib.request

import pytest

from tests.conftest import make_config
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_run_reports_to_a_real_server(tmp_path, tiny_model_dir, toy_data, prefect_env, prefect_server):
    env = {**prefect_env, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path / "client-home")}
    out = run_cli(["run", make_config(tmp_path, tiny_model_dir, toy_data)], env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Starting temporary server" not in out.stdout + out.stderr
    req = urllib.request.Request(
        f"{prefect_server}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        runs = json.loads(r.read())
    assert [fr["state_type"] for fr in runs] == ["COMPLETED"]
    assert "PROMOTED" in runs[0]["state"]["message"]  # "PROMOTED" or "NOT PROMOTED": the decision is on the server
