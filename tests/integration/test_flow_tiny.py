"""The Prefect flow end to end on the tiny model: bad data stops it cleanly; good data registers."""

import json

import pytest
import yaml

from tests.conftest import make_config, write_toy_data
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


def test_bad_data_stops_the_flow_without_traceback_or_registry_write(tmp_path, tiny_model_dir, toy_data, prefect_env):
    leak = tmp_path / "leak.csv"
    leak.write_text(toy_data["train"].read_text())  # eval == train: all rows leak
    cfg = make_config(tmp_path, tiny_model_dir, {**toy_data, "eval": leak})
    out = run_cli(["run", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 1
    assert "[leakage]" in out.stderr and "Report:" in out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert not (tmp_path / "registry" / "toy").exists()  # no model version
    run_dir = next((tmp_path / "runs").iterdir())
    (audit,) = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert audit["run_id"] == run_dir.name and audit["status"] == "failed" and audit["failed_stage"] == "validate_data"
    assert "[leakage]" in audit["error"]
    report = json.loads((run_dir / "validation.json").read_text())
    assert not report["ok"] and report["issues"][0]["check"] == "leakage" and len(report["issues"][0]["rows"]) == 14


@pytest.fixture(scope="module")
def good_run(tmp_path_factory, tiny_model_dir, prefect_env):
    """One run on good data without data.labels, in a Prefect home of its own (its cache starts empty): the
    stage checks and the cache test's first run."""
    tmp_path = tmp_path_factory.mktemp("good-run")
    env = {**prefect_env, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    # no data.labels: the flow runs on the labels validation found in train; a selection split and two seeds
    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        write_toy_data(tmp_path),
        data={"labels": None, "dev_fraction": 0.25},
        gate={"seeds": 2, "bootstrap_samples": 200},
    )
    return {"dir": tmp_path, "env": env, "cfg": cfg, "out": run_cli(["run", cfg], env=env, cwd=tmp_path)}


def test_good_data_runs_every_stage(good_run):
    tmp_path, out = good_run["dir"], good_run["out"]
    assert out.returncode == 0, out.stderr[-2000:]
    logs = out.stdout + out.stderr
    for stage in ("prepare_run", "validate_data", "evaluate_baseline", "tune", "evaluate_tuned", "compare", "deploy"):
        assert stage in logs, stage
    run_dir = sorted((tmp_path / "runs").iterdir())[0]
    decision = json.loads((run_dir / "decision.json").read_text())
    assert set(decision["baselines"]) == {
        "zero_shot",
        "zero_shot_calibrated",
        "few_shot",
        "few_shot_calibrated",
        "retrieved_few_shot_hybrid",
        "retrieved_few_shot_hybrid_calibrated",
    }
    versions = sorted(p.name for p in (tmp_path / "registry" / "toy").iterdir() if p.name.startswith("v"))
    assert versions == ["v1"]
    # the run's resolved config, and the registry's copy of it, name the inferred labels
    for resolved in (run_dir / "config.yaml", tmp_path / "registry" / "toy" / "v1" / "config.yaml"):
        assert yaml.safe_load(resolved.read_text())["data"]["labels"] == {"neg": "neg", "pos": "pos"}
    assert "2 labels below were found in train" in (run_dir / "validation.md").read_text()
    assert (run_dir / "report.html").is_file() and decision["headline"] in out.stdout
    audit = json.loads((tmp_path / "registry" / "audit.jsonl").read_text().splitlines()[0])
    assert (
        audit["status"] == "completed"
        and audit["decision"] == decision["decision"]
        and audit["deployed"]["registered_version"] == 1
    )
    aliases_file = tmp_path / "registry" / "toy" / "aliases.json"
    moved = aliases_file.exists() and json.loads(aliases_file.read_text()).get("production") == 1
    assert moved == (decision["decision"] == "promote")
    # gate.seeds 2: both seeds trained and scored on the selection split; the candidate is the one chosen there
    seeds = decision["seeds"]
    assert seeds["k"] == 2 and seeds["chosen_on"] == "dev" and [x["seed"] for x in seeds["per_seed"]] == [0, 1]
    best = max(seeds["per_seed"], key=lambda x: x["selection_metric"])
    assert seeds["chosen"] == best["name"] and decision["tuned"]["accuracy"] == best["metric"]
    assert all((run_dir / "seeds" / f"seed-{n}" / "artifact" / "tunegate.json").is_file() for n in (0, 1))
    meta = json.loads((tmp_path / "registry" / "toy" / "v1" / "artifact" / "tunegate.json").read_text())
    assert meta["method_config"]["seed"] == seeds["chosen_seed"]  # the version registered is the chosen seed
    assert decision["selection"]["split"] == "dev" and "## Seeds (2 trainings" in (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()  # the chosen seed's loss plot is embedded like the others
    assert "missing image" not in html and html.count("data:image/png;base64,") == 4
    verified = run_cli(
        ["audit", "verify", run_dir.name, "--registry", tmp_path / "registry"], env=good_run["env"], cwd=tmp_path
    )
    assert verified.returncode == 0 and "chosen seed" in verified.stdout, verified.stdout + verified.stderr


def test_a_dask_run_on_two_worker_processes_decides_as_the_sequential_run(good_run, tmp_path, mlflow_server):
    """good_run's config with `orchestration.task_runner: dask`: a local cluster of 2 worker processes
    (prefect-dask), a result storage of its own (nothing from good_run's cache), so the rungs and both seeds'
    trainings and scorings run on the workers; the same decision and the same per-row predictions as good_run's
    sequential run. Where the tasks run is not part of the config hash (resume and retrain-skip hold across).
    The same run logs to a real `mlflow server` (tracking.mlflow) from the workers and the flow: one MLflow run."""
    env = {**good_run["env"], "PREFECT_LOCAL_STORAGE_PATH": str(tmp_path / "results")}
    sets = ["orchestration.task_runner=dask", "orchestration.workers=2", f"output.dir={tmp_path / 'runs'}"]
    sets += [f"registry.path={tmp_path / 'registry'}", f"tracking.mlflow.uri={mlflow_server}"]
    sets.append("tracking.mlflow.experiment=dask-run")
    out = run_cli(["run", good_run["cfg"], *(x for s in sets for x in ("--set", s))], env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = out.stdout + out.stderr
    assert "task runner: dask, 2 workers x 1 torch threads" in logs and "write_storage_markers" in logs
    assert "Cached" not in logs and "Starting temporary server" not in logs  # workers report to the run's server
    sequential = sorted((good_run["dir"] / "runs").iterdir())[0]
    parallel = next((tmp_path / "runs").iterdir())
    d_seq, d_par = (json.loads((r / "decision.json").read_text()) for r in (sequential, parallel))
    for key in ("decision", "baselines", "tuned", "delta", "ci_low", "ci_high", "best_baseline"):
        assert d_par[key] == d_seq[key], key
    assert d_par["seeds"]["chosen"] == d_seq["seeds"]["chosen"] and len(d_par["seeds"]["per_seed"]) == 2
    files = sorted(p.name for p in (sequential / "predictions").glob("*.jsonl"))
    # 6 rungs, the candidate and its 2 seeds, on the eval rows and on the selection rows
    assert len(files) == 18 and files == sorted(p.name for p in (parallel / "predictions").glob("*.jsonl"))
    for name in files:  # every answer to every row
        assert (parallel / "predictions" / name).read_text() == (sequential / "predictions" / name).read_text()
    assert not list(parallel.glob(".tunegate-worker-*"))  # the storage check's markers are gone

    # the run as MLflow's client sees it: one run for the flow and both workers, params, each rung's and the
    # candidate's metric with its CI, the loss of every training step (on a worker, live), the report as artifacts
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    (mlrun,) = client.search_runs([client.get_experiment_by_name("dask-run").experiment_id])
    assert mlrun.info.status == "FINISHED" and mlrun.info.run_name == parallel.name
    assert mlrun.data.tags["decision"] == d_par["decision"] and mlrun.data.params["orchestration.task_runner"] == "dask"
    m = mlrun.data.metrics
    for row in d_par["models"]:
        key = row["name"].replace(":", "_")
        assert m[f"{key}.accuracy"] == pytest.approx(row["metric"]), key
        assert m[f"{key}.accuracy.ci_low"] == pytest.approx(row["ci_low"]) and f"{key}.monthly_usd" in m
    assert m["decision.delta"] == pytest.approx(d_par["delta"]) and "gate.min_gain" in mlrun.data.params
    losses = client.get_metric_history(mlrun.info.run_id, "train.lora.loss")  # both seeds' steps
    assert len(losses) == 2 * 2 and all(x.value > 0 for x in losses)
    report = {a.path for a in client.list_artifacts(mlrun.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/decision.json"} <= report
    assert any(a.path.endswith(".png") for a in client.list_artifacts(mlrun.info.run_id, "report/plots"))


def test_method_only_change_reuses_cached_baselines(good_run):
    first, tmp_path = good_run["out"], good_run["dir"]
    assert first.returncode == 0 and "Cached" not in first.stdout + first.stderr
    # nothing here changes a token: the method's settings, a max_length that cuts no input, the batch size
    changes = ["method.r=4", "gate.min_gain=0.5", "method.max_length=200", "baselines.batch_size=2"]
    changes.append("forecast.after_reject=true")  # min_gain 0.5 is out of reach: the report gets a forecast
    second = run_cli(
        ["run", good_run["cfg"], *[x for c in changes for x in ("--set", c)]], env=good_run["env"], cwd=tmp_path
    )
    assert second.returncode == 0
    logs = second.stdout + second.stderr
    assert "evaluate_baseline[zero_shot]' - Finished in state Cached" in logs
    assert "evaluate_baseline[few_shot]' - Finished in state Cached" in logs
    assert "evaluate_baseline[retrieved_few_shot_hybrid_calibrated]' - Finished in state Cached" in logs
    runs = sorted((tmp_path / "runs").iterdir())
    d1, d2 = (json.loads((r / "decision.json").read_text()) for r in runs)
    assert d1["baselines"] == d2["baselines"]
    assert d2["decision"] == "reject" and (runs[1] / "forecast.json").is_file()
    report = (runs[1] / "report.md").read_text()
    assert "## Forecast: lora with more labelled rows" in report and "![learning curve](forecast.png)" in report
    assert json.loads((runs[1] / "forecast.json").read_text())["points"][-1]["rows"] == d2["provenance"]["n_train"]
    # a different prompt is a different key: test_stages.py::test_the_ladder_cache_key_follows_the_prompt_tokens


def test_forecast_trains_nested_fractions_and_fits_the_curve(good_run):
    """`tunegate forecast` on good_run's config (real Prefect, the tiny model): the method trained on 3 nested
    fractions of train, each scored on the eval rows, the baselines from the cache, the curve and its files."""
    registry = good_run["dir"] / "registry" / "toy"
    before = sorted(p.name for p in registry.iterdir())
    out = run_cli(["forecast", good_run["cfg"]], env=good_run["env"], cwd=good_run["dir"])
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = sorted((good_run["dir"] / "runs").iterdir())[-1]
    result = json.loads((run_dir / "forecast.json").read_text())
    rows = [p["rows"] for p in result["points"]]
    assert (
        len(rows) == 3
        and rows == sorted(rows)
        and rows[-1] == json.loads((run_dir / "validation.json").read_text())["stats"]["rows"]["train"]
    )
    assert all((run_dir / "forecast" / f"rows-{n}" / "artifact" / "tunegate.json").is_file() for n in rows)
    assert result["verdict"] in ("reached", "reachable", "flat", "out_of_reach") and result["summary"] in out.stdout
    assert (run_dir / "forecast.png").stat().st_size > 5000 and "# Forecast: lora" in out.stdout
    assert "Cached" in out.stdout + out.stderr  # the ladder came from good_run's cache
    assert sorted(p.name for p in registry.iterdir()) == before  # nothing registered


def test_over_budget_stops_before_training(tmp_path, tiny_model_dir, toy_data, prefect_env):
    cfg = make_config(tmp_path, tiny_model_dir, toy_data, budget={"max_train_minutes": 0.0001})
    out = run_cli(["run", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr
    assert "exceeds the budget: time" in out.stderr and "Stopped before training" in out.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "plan.md").is_file() and not (run_dir / "artifact").exists()
    assert not (tmp_path / "registry" / "toy").exists()
    (audit,) = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert audit["status"] == "failed" and audit["failed_stage"] == "plan" and "exceeds the budget" in audit["error"]


def test_auto_method_runs_the_advisors_choice_and_reports_why(tmp_path, tiny_model_dir, toy_data, prefect_env):
    cfg = make_config(
        tmp_path, tiny_model_dir, toy_data, method={"name": "auto", "priority": "speed", "max_length": 64}
    )
    out = run_cli(["run", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    run_dir = next((tmp_path / "runs").iterdir())
    decision = json.loads((run_dir / "decision.json").read_text())
    assert "tuned:linear_probe" in decision["costs"]
    report = (run_dir / "report.md").read_text()
    assert "## Plan vs actual" in report and "Method chosen by the advisor (`method: auto`): **linear_probe**" in report
    assert "- not lora:" in report and "| train time |" in report
    meta = json.loads((tmp_path / "registry" / "toy" / "v1" / "artifact" / "tunegate.json").read_text())
    assert meta["method"] == "linear_probe"
    pred = run_cli(
        ["predict", "--registry", tmp_path / "registry", "--model", "toy@1", "--json", "a wonderful film"],
        env=prefect_env,
        cwd=tmp_path,
    )
    assert pred.returncode == 0 and json.loads(pred.stdout.splitlines()[0])["label"] in ("pos", "neg")


def test_compare_runs_every_method_and_reports_a_failure_in_the_table(tmp_path, tiny_model_dir, toy_data, prefect_env):
    small = {"max_steps": 2, "batch_size": 4, "micro_batch_size": 2, "max_length": 64}
    methods = [
        {"name": "lora", "r": 2, **small},
        {"name": "lora", "r": 2, "layers": "top:1", **small},  # a sweep of method.layers: named by what differs
        {"name": "qlora", "r": 2, "target_modules": ["no_such_module"], **small},  # fails inside peft
        {"name": "prompt_tuning", "num_virtual_tokens": 4, **small},
        {"name": "linear_probe", "max_length": 64, "epochs": 20},
    ]
    # two seeds per method: each method's claim is a bootstrap over seeds and rows together
    guards = {"retention": {"rows": 60, "kl": False}, "slices": False, "bias": False, "injection": False}
    cfg = make_config(
        tmp_path, tiny_model_dir, toy_data, compare=methods, gate={"seeds": 2, "bootstrap_samples": 200}, guards=guards
    )
    out = run_cli(["compare", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Traceback" not in out.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    table = json.loads((run_dir / "compare.json").read_text())
    rows = {r["name"]: r for r in table["rows"]}
    assert set(rows) == {
        "zero_shot",
        "zero_shot_calibrated",
        "few_shot",
        "few_shot_calibrated",
        "retrieved_few_shot_hybrid",
        "retrieved_few_shot_hybrid_calibrated",
        "lora[layers=all]",
        "lora[layers=top:1]",
        "qlora",
        "prompt_tuning",
        "linear_probe",
    }
    assert (
        rows["qlora"]["status"] == "failed" and "no_such_module" in rows["qlora"]["error"]
    )  # caught by its calibration
    folders = {"lora[layers=all]": "lora-layers-all", "lora[layers=top:1]": "lora-layers-top-1"}
    for name in ("lora[layers=all]", "lora[layers=top:1]", "prompt_tuning", "linear_probe"):
        r = rows[name]
        assert r["status"] == "completed", r
        assert r["ci_low"] <= r["metric"] <= r["ci_high"] and r["delta_ci_low"] <= r["delta"] <= r["delta_ci_high"]
        assert (
            r["trainable_params"] > 0 and r["artifact_mb"] > 0 and r["train_seconds"] > 0 and r["est_train_seconds"] > 0
        )
        assert r["decision"] in ("promote", "reject")
        folder = run_dir / "methods" / folders.get(name, name)
        assert all((folder / "seeds" / f"seed-{n}" / "loss.png").is_file() for n in (0, 1))
        assert set(r["guards"]) == {"retention", "overfitting"} and (folder / "guards.json").is_file()
        sd = r["seeds"]
        assert sd["k"] == 2 and set(sd["metrics"]) == {"0", "1"} and sd["ci_low"] <= sd["mean_delta"] <= sd["ci_high"]
        assert r["metric"] == pytest.approx(sd["metrics"]["0"])  # the table's row is the first seed's model
    assert rows["linear_probe"]["trainable_params"] < rows["prompt_tuning"]["trainable_params"] * 10
    # the tiny llama has 2 blocks: adapters on the top one only are half of them
    assert rows["lora[layers=top:1]"]["trainable_params"] * 2 == rows["lora[layers=all]"]["trainable_params"]
    assert rows["lora[layers=all]"]["retention"]["name"] == "piqa"  # the sweep's x axis
    assert rows["linear_probe"]["guards"]["retention"] == "not_measured"  # a head on the frozen base forgets nothing
    assert (run_dir / "compare_retention.png").stat().st_size > 5000
    md = (run_dir / "compare.md").read_text()
    assert "## What tuning may break (guards)" in md and "compare_retention.png" in md
    assert "| qlora | failed |" in md and "no_such_module" in md and "![accuracy" in md
    assert "## Seeds (2 trainings per method)" in md
    assert (run_dir / "compare.png").stat().st_size > 5000
    assert not (tmp_path / "registry").exists()  # a comparison registers nothing
    assert "tune[lora" in out.stdout + out.stderr and "tune[prompt_tuning]" in out.stdout + out.stderr


def test_a_method_failing_in_training_is_a_table_row_and_the_others_finish(
    tmp_path, tiny_model_dir, toy_data, prefect_env
):
    """The failure happens inside the `tune` task (after a clean calibration): the flow records it and goes on."""
    import subprocess
    import sys

    from tests.integration.conftest import ROOT

    small = {"max_steps": 2, "batch_size": 4, "micro_batch_size": 2, "max_length": 64}
    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        toy_data,
        compare=[{"name": "prompt_tuning", "num_virtual_tokens": 2, **small}, {"name": "lora", "r": 2, **small}],
    )
    script = f"""
import tunegate.stages as st
real = st.tune
def tune(cfg, run, dataset, **kw):
    if cfg.method.name == "prompt_tuning":
        raise RuntimeError("injected failure while training prompt_tuning")
    return real(cfg, run, dataset, **kw)
st.tune = tune
from tunegate.prefect_env import configure
configure()
from tunegate.flows.method_comparison import compare
state = compare(config_path={str(cfg)!r}, return_state=True)
print("FINAL", state.type.value, state.message)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**prefect_env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=900,
    )
    assert "FINAL COMPLETED" in out.stdout, out.stderr[-3000:]
    rows = {
        r["name"]: r for r in json.loads((next((tmp_path / "runs").iterdir()) / "compare.json").read_text())["rows"]
    }
    assert rows["prompt_tuning"]["status"] == "failed" and "injected failure" in rows["prompt_tuning"]["error"]
    assert rows["lora"]["status"] == "completed" and rows["lora"]["metric"] is not None
    assert "failed: prompt_tuning" in out.stdout


def test_a_crash_mid_pipeline_is_audited_and_leaves_production_alone(tmp_path, tiny_model_dir, toy_data, prefect_env):
    """`validate_data`, then `tune`, raise inside the real flow: each run fails, the audit log says where and why,
    no version appears. Then a transient failure after a checkpoint: Prefect's retry of `tune` resumes from it."""
    import subprocess
    import sys

    from tests.integration.conftest import ROOT

    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        toy_data,
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
        method={"checkpoint_every": 1},
    )
    script = f"""
import os
import tunegate.stages as st
import tunegate.checkpoints as ck
from tunegate.errors import TransientError
validate, train = st.validate_data, st.tune
def crash(what):
    def stage(*a, **kw):
        raise RuntimeError("injected crash " + what)
    return stage
st.validate_data = crash("while validating")
from tunegate.prefect_env import configure
configure()
from tunegate.flows.pipeline import pipeline
state = pipeline(config_path={str(cfg)!r}, return_state=True)
print("FIRST", state.type.value)
st.validate_data = validate
st.tune = crash("while training")
state = pipeline(config_path={str(cfg)!r}, return_state=True)
print("SECOND", state.type.value, "registered:", os.path.exists({str(tmp_path / "registry" / "toy")!r}))
# a transient failure right after the first checkpoint: Prefect retries `tune`, which resumes from it
st.tune = train
save, failed = ck.save, []
def save_then_fail(*a, **kw):
    out = save(*a, **kw)
    if not failed:
        failed.append(1)
        raise TransientError("injected I/O hiccup after a checkpoint")
    return out
ck.save = save_then_fail
state = pipeline(config_path={str(cfg)!r}, return_state=True)
print("THIRD", state.type.value)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**prefect_env, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=900,
    )
    assert "FIRST FAILED" in out.stdout and "SECOND FAILED registered: False" in out.stdout, (
        out.stdout[-2000:] + out.stderr[-3000:]
    )
    # a crash inside validation (not a data error: the code itself) is audited too, then one inside training
    first, audit, third = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert first["status"] == "failed" and first["failed_stage"] == "validate_data"
    assert "injected crash while validating" in first["error"]
    assert (
        audit["status"] == "failed"
        and audit["failed_stage"] == "tune"
        and "injected crash while training" in audit["error"]
    )
    # the retried tune task continued from its checkpoint (step 1 of 2), not from step 0
    assert "THIRD COMPLETED" in out.stdout and third["status"] == "completed", out.stderr[-3000:]
    logs = out.stdout + out.stderr
    assert "injected I/O hiccup" in logs and "resuming training from checkpoint step-0000001: 1 of 2 steps done" in logs


def test_sigterm_mid_training_cancels_cleanly_then_resume_finishes(
    tmp_path, tiny_model_dir, toy_data, prefect_env, capsys, monkeypatch
):
    """SIGTERM to `tunegate run` while it trains: exit 143 with one clear line, the run audited as cancelled in
    `tune`, no version registered, and no process of the run left behind (the temporary Prefect server that the
    CLI started for itself included). Then `tunegate run --resume RUN_ID` continues training from the newest
    checkpoint (not step 0) and completes; a wrong run id or a changed config is one clear error."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import polars as pl

    rows = pl.read_csv(toy_data["train"])
    big = pl.concat([rows.with_columns(pl.col("text") + f" ({i})") for i in range(10)])  # 140 distinct rows
    big.write_csv(tmp_path / "big.csv")
    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        {**toy_data, "train": tmp_path / "big.csv"},
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
        method={"epochs": 4, "batch_size": 4, "micro_batch_size": 2, "checkpoint_every": 10, "max_steps": None},
    )
    env = {k: v for k, v in prefect_env.items() if k != "PREFECT_API_URL"}  # the CLI's own temporary server
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunegate.cli", "run", str(cfg)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: whatever it started is found by the group id
    )
    try:
        deadline = time.time() + 600
        while not list((tmp_path / "runs").glob("*/artifact/checkpoints/step-*")):  # training is under way
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)  # as a scheduler or `kill` stops a process group
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err[-3000:]
    assert "STOPPED (SIGTERM)" in err and "Traceback" not in err, err[-3000:]
    (audit,) = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert audit["status"] == "cancelled" and audit["failed_stage"] == "tune", audit
    assert not (tmp_path / "registry" / "toy").exists()
    time.sleep(2)
    try:
        os.killpg(proc.pid, 0)
        left = subprocess.run(["ps", "-o", "pid,args", "-g", str(proc.pid)], capture_output=True, text=True).stdout
        raise AssertionError(f"processes of the stopped run are still alive:\n{left}")
    except ProcessLookupError:
        pass  # the group is empty

    (run_dir,) = (tmp_path / "runs").iterdir()
    done = sorted(int(p.name.split("-")[1]) for p in (run_dir / "artifact" / "checkpoints").glob("step-*"))[-1]
    assert 10 <= done < 140
    from tunegate.cli import main

    # a wrong run id or a changed config is refused before Prefect starts: checked in process (no CLI start-up)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["run", str(cfg), "--resume", "no-such-run"]) == 1
    err = capsys.readouterr().err
    assert "no-such-run" in err and run_dir.name in err, err
    assert main(["run", str(cfg), "--resume", run_dir.name, "--set", "method.lr=0.001"]) == 1
    assert "the config differs" in capsys.readouterr().err
    resumed = run_cli(["run", str(cfg), "--resume", run_dir.name], env=prefect_env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming training from checkpoint step-{done:07d}: {done} of 140 steps done" in resumed.stderr
    assert "Traceback" not in resumed.stderr
    assert f"resumed from the checkpoint of step {done} after an interruption" in (run_dir / "report.md").read_text()
    tuned = json.loads((run_dir / "decision.json").read_text())
    first, second = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert second["status"] == "completed" and second["run_id"] == first["run_id"] == run_dir.name
    assert "resumed run" in second["trigger"] and tuned["decision"] in ("promote", "reject")
    assert (tmp_path / "registry" / "toy" / "v1").is_dir()
    assert not list((tmp_path / "registry" / "toy" / "v1").rglob("checkpoints"))  # training state stays in the run
    capsys.readouterr()
    verified = main(["audit", "verify", "--registry", str(tmp_path / "registry"), run_dir.name])
    assert verified == 0, capsys.readouterr()  # both records of the run, each with its evidence


STAGE_SIGTERM = r"""
import os, signal, sys, time
import tunegate.stages as st

stage = sys.argv[1]
original = getattr(st, stage)


def stopped(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)  # as `kill PID` would, while the stage runs
    time.sleep(60)
    return original(*args, **kwargs)


setattr(st, stage, stopped)
from tunegate.cli import main

sys.exit(main(["run", sys.argv[2]]))
"""


@pytest.mark.parametrize("stage", ["validate_data", "evaluate_baseline", "deploy"])
def test_sigterm_in_any_stage_is_audited_as_cancelled_there(stage, tmp_path, tiny_model_dir, toy_data, prefect_env):
    """SIGTERM arriving inside a stage (validation, the ladder, deploy): exit 143, one clear line, the run audited
    as `cancelled` in that stage, no version registered, no process of the run left."""
    import subprocess
    import sys

    # data no other test has: the ladder's cache (keyed by content) must not answer for the stopped stage
    rows = toy_data["train"].read_text().splitlines() + [f'"a row only the {stage} stop test has",pos']
    (tmp_path / "stop-train.csv").write_text("\n".join(rows) + "\n")
    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        {**toy_data, "train": tmp_path / "stop-train.csv"},
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
    )
    script = tmp_path / "stop.py"
    script.write_text(STAGE_SIGTERM)
    out = subprocess.run(
        [sys.executable, str(script), stage, str(cfg)],
        capture_output=True,
        text=True,
        env=prefect_env,
        cwd=tmp_path,
        timeout=600,
        start_new_session=True,
    )
    assert out.returncode == 143, out.stdout[-2000:] + out.stderr[-3000:]
    assert "STOPPED (SIGTERM)" in out.stderr and "Traceback" not in out.stderr, out.stderr[-3000:]
    (audit,) = [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]
    assert audit["status"] == "cancelled" and audit["failed_stage"] == stage, audit
    assert not list((tmp_path / "registry").glob("toy/v*"))
    left = subprocess.run(["pgrep", "-f", str(script)], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes of the stopped run are still alive: {left}"


AUDIT_UNWRITABLE = r"""
import sys
import tunegate.audit as audit


def full_disk(self, *args, **kwargs):
    raise OSError(28, "No space left on device")


audit.AuditLog.append = full_disk
from tunegate.cli import main

sys.exit(main(["run", sys.argv[1]]))
"""


def test_bad_data_is_reported_even_when_the_audit_log_cannot_be_written(
    tmp_path, tiny_model_dir, toy_data, prefect_env
):
    """The data's own error (the row without a label) is the message, the failed audit write is said too, and the
    CLI does not claim the failure is in the audit log."""
    import subprocess
    import sys

    rows = toy_data["train"].read_text().splitlines() + ['"a row without a label",']
    (tmp_path / "bad.csv").write_text("\n".join(rows) + "\n")
    cfg = make_config(tmp_path, tiny_model_dir, {**toy_data, "train": tmp_path / "bad.csv"})
    script = tmp_path / "nodisk.py"
    script.write_text(AUDIT_UNWRITABLE)
    out = subprocess.run(
        [sys.executable, str(script), str(cfg)],
        capture_output=True,
        text=True,
        env=prefect_env,
        cwd=tmp_path,
        timeout=600,
    )
    err = out.stderr
    assert out.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert "[null_values]" in err and "rows 15" in err, err[-3000:]
    assert "the audit record could not be written (OSError: [Errno 28] No space left on device)" in err
    assert "no audit record could be written for it" in err and "the failure is in the audit log" not in err
