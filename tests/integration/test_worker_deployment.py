"""The retrain deployment of deployments/prefect.yaml, run by a process worker against a real Prefect server,
its training on a second work pool.

Server (own PREFECT_HOME, 127.0.0.1) -> two process work pools -> `prefect deploy` of the repository's
`retrain-weekly` deployment (parameters pointed at a small slice of real SST-2 and the tiny model, whose config
sets `orchestration.tune_on: tunegate-tune/tune-gpu`) on the first and of `tune-gpu` on the second -> a worker
per pool -> the retrain deployment run: its ladder on the first pool, its training as a flow run of the second
pool's deployment; it registers v1. Everything started is stopped.
"""

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import SHARED_DATA, make_config
from tests.integration.conftest import ROOT, api, stop

pytestmark = pytest.mark.integration

SST2 = SHARED_DATA / "sst2"
if not (SST2 / "train.tsv").is_file():
    pytest.skip("../shared/data/sst2 is not beside the checkout", allow_module_level=True)


def prefect(args, env, timeout=180):
    out = subprocess.run(
        [sys.executable, "-m", "prefect", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout
    )
    assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def wait_for(base, flow_run_id, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fr = api(base, f"/flow_runs/{flow_run_id}")
        if fr["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return fr
        time.sleep(2)
    pytest.fail(f"flow run {flow_run_id} did not finish within {timeout} s (last state {fr['state_type']})")


def test_retrain_deployment_runs_on_a_worker_of_a_real_server(tmp_path, tiny_model_dir, prefect_env, prefect_server):
    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        {"train": SST2 / "train.tsv", "eval": SST2 / "test.tsv"},
        data={
            "text_column": "sentence",
            "label_column": "label",
            "labels": {0: "negative", 1: "positive"},
            "max_train_rows": 48,
            "max_eval_rows": 24,
            "duplicates": "drop",
            "leakage": "drop",
        },
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
        registry={"path": str(tmp_path / "registry"), "model_name": "sst2-tiny"},
        orchestration={"tune_on": "tunegate-tune/tune-gpu"},  # the training: a flow run on the other pool
    )
    env = {
        **prefect_env,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_HOME": str(tmp_path / "client-home"),
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "PREFECT_CLI_PROMPT": "false",
    }
    pool, gpu_pool = "tunegate-test", "tunegate-gpu-test"
    prefect(["work-pool", "create", pool, "--type", "process"], env)
    prefect(["work-pool", "create", gpu_pool, "--type", "process"], env)
    deploy = ["deploy", "--prefect-file", "deployments/prefect.yaml", "--name", "tune-gpu", "--pool", gpu_pool]
    prefect([*deploy, "--no-prompt"], env)
    params = json.dumps({"config_path": str(cfg), "force": False, "trigger": "schedule"})
    prefect(
        [
            "deploy",
            "--prefect-file",
            "deployments/prefect.yaml",
            "--name",
            "retrain-weekly",
            "--pool",
            pool,
            "--params",
            params,
            "--no-prompt",
        ],
        env,
    )
    deps = {d["name"]: d for d in api(prefect_server, "/deployments/filter", {})}
    dep, tune_dep = deps["retrain-weekly"], deps["tune-gpu"]
    assert dep["work_pool_name"] == pool and tune_dep["work_pool_name"] == gpu_pool
    assert dep["parameters"]["config_path"] == str(cfg)
    assert [s["schedule"]["cron"] for s in dep["schedules"]] == ["0 3 * * 1"]  # the weekly schedule came with it

    log, gpu_log = open(tmp_path / "worker.log", "w"), open(tmp_path / "gpu-worker.log", "w")
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", name, "--type", "process"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        for name, out in ((pool, log), (gpu_pool, gpu_log))
    ]
    try:
        fr = api(prefect_server, f"/deployments/{dep['id']}/create_flow_run", {})
        done = wait_for(prefect_server, fr["id"])
        assert done["state_type"] == "COMPLETED", (
            done["state"]["message"],
            (tmp_path / "worker.log").read_text()[-4000:],
        )
    finally:
        for worker in workers:
            stop(worker)
        log.close()
        gpu_log.close()

    # the run trained and registered a version (a second run with the same data stops at "no change": the
    # retrain story in test_retrain_tiny.py; not repeated here for the suite's time)
    reg = tmp_path / "registry" / "sst2-tiny"
    assert sorted(p.name for p in reg.iterdir() if p.name.startswith("v")) == ["v1"]
    assert "PROMOTED" in done["state"]["message"]
    records = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["completed"]
    assert records[0]["trigger"] == "schedule (deployment retrain-weekly)"
    # it ran in the worker's subprocess, against this server
    assert "retrain" in (tmp_path / "worker.log").read_text()
    # its training ran as a flow run of the tune deployment, picked up by the other pool's worker
    runs = api(prefect_server, "/flow_runs/filter", {"deployments": {"id": {"any_": [tune_dep["id"]]}}})
    (tuned,) = runs
    assert tuned["state_type"] == "COMPLETED" and tuned["work_pool_name"] == gpu_pool
    assert tuned["parameters"]["run"]["run_id"] == records[0]["run_id"]
    assert "tunegate-tune" in (tmp_path / "gpu-worker.log").read_text()
    meta = json.loads((reg / "v1" / "artifact" / "tunegate.json").read_text())
    assert meta["method"] == "lora" and (tmp_path / "runs" / records[0]["run_id"] / "remote").is_dir()
    # and the server's scheduler put the weekly runs on the calendar (Mondays 03:00 UTC)
    scheduled = [r for r in api(prefect_server, "/flow_runs/filter", {}) if r["auto_scheduled"]]
    assert scheduled and all(
        r["state_type"] == "SCHEDULED" and r["expected_start_time"].endswith("T03:00:00Z") for r in scheduled
    )
