"""`tunegate run` against a real Prefect server (PREFECT_API_URL), not the embedded one: the run, its decision
and the library's progress lines under each task run are on the server."""

import pytest

from tests.conftest import make_config
from tests.integration.conftest import api, run_cli

pytestmark = pytest.mark.integration


def test_run_reports_to_a_real_server(tmp_path, tiny_model_dir, toy_data, prefect_env, prefect_server):
    env = {
        **prefect_env,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        "TUNEGATE_PROGRESS_LOG_S": "0",  # every bar update is logged (the default: every 10 s, and at the end)
    }
    out = run_cli(["run", make_config(tmp_path, tiny_model_dir, toy_data)], env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Starting temporary server" not in out.stdout + out.stderr
    runs = api(prefect_server, "/flow_runs/filter", {})
    assert [fr["state_type"] for fr in runs] == ["COMPLETED"]
    assert "PROMOTED" in runs[0]["state"]["message"]  # "PROMOTED" or "NOT PROMOTED": the decision is on the server
    names = {t["id"]: t["name"] for t in api(prefect_server, "/task_runs/filter", {})}
    logs, page = [], None
    while page != []:  # the API returns at most 200 records per call
        query = {"logs": {"task_run_id": {"is_null_": False}}, "limit": 200, "offset": len(logs)}
        page = api(prefect_server, "/logs/filter", query)
        logs += page
    progress = [(names.get(x["task_run_id"], "?"), x["message"]) for x in logs if x["name"] == "tunegate.progress"]
    by_task = {}
    for task, msg in progress:
        by_task.setdefault(task.rsplit("-", 1)[0], []).append(msg)
    # the rung's scoring and calibration, and training, each under their own task run, with counts and a rate
    zero = by_task["evaluate_baseline[zero_shot]"]
    assert any(m.startswith("score zero_shot: ") and " ex (" in m and "ex/s" in m for m in zero), zero
    calibrated = by_task["evaluate_baseline[zero_shot_calibrated]"]
    assert any(m.startswith("calibrate zero_shot_calibrated: ") for m in calibrated), calibrated
    tune = by_task["tune[lora]"]
    assert any(m.startswith("tune: ") and " step (" in m for m in tune), tune
    # outside a run, nothing is sent and nothing warns
    assert "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW" not in out.stderr
