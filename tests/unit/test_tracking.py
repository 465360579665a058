"""Tracking backends (tunegate/tracking/): the stage and step hooks, the built-in `events` log, and a backend
added in a test."""

import json
import logging
from pathlib import Path

import pytest
from pydantic import Field

from tests.conftest import make_config, pipeline_run
from tunegate.config import load_config
from tunegate.errors import ConfigError
from tunegate.strict import Strict
from tunegate.tracking import Tracker, register_tracker, unregister_tracker

SEEN: list[tuple] = []


class RecorderSettings(Strict):
    tag: str = Field(default="run", description="A label every event carries.")


class Recorder(Tracker):
    """A backend a user adds: remembers what it was given."""

    def log_stage(self, stage, result):
        SEEN.append(("stage", self.settings.tag, stage, type(result).__name__))

    def log_step(self, method, step, values):
        SEEN.append(("step", self.settings.tag, method, step, values["loss"]))


class Broken(Tracker):
    """A backend whose service is down: every call raises."""

    def log_stage(self, stage, result):
        raise ConnectionError("tracking server unreachable")

    def log_step(self, method, step, values):
        raise ConnectionError("tracking server unreachable")


@pytest.fixture
def backends():
    register_tracker("recorder", settings=RecorderSettings, description="Test.", implementation=f"{__name__}:Recorder")
    register_tracker("broken", settings=RecorderSettings, description="Test.", implementation=f"{__name__}:Broken")
    SEEN.clear()
    yield
    unregister_tracker("recorder")
    unregister_tracker("broken")


def test_a_new_backend_sees_every_stage_and_step_and_a_failing_one_only_warns(
    backends, tmp_path, tiny_model_dir, toy_data, caplog
):
    """One class and its registration: `tracking.recorder` is a config key with its settings; it gets each stage's
    record in order and each training step's loss; a backend that raises warns and the run completes; the
    built-in `events` backend writes the same to events.jsonl."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's SQLite store (its server: tests/integration)
    tracking = {"recorder": {"tag": "t1"}, "broken": True, "events": {}, "mlflow": {"uri": store, "experiment": "unit"}}
    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, tracking=tracking))
    assert cfg.tracking.recorder.tag == "t1" and cfg.tracking.broken.tag == "run"
    with caplog.at_level(logging.WARNING, logger="tunegate.tracking"):
        run, decision, deployed = pipeline_run(cfg)
    assert deployed.registered_version == 1  # the broken backend did not stop the run
    assert "tracking backend Broken failed to log" in caplog.text and "unreachable" in caplog.text
    stages = [s[2] for s in SEEN if s[0] == "stage"]
    ladder = [s for s in stages if s.startswith("evaluate_baseline[")]
    assert stages[0] == "validate_data" and "evaluate_baseline[zero_shot]" in ladder
    assert stages[len(ladder) + 1 :] == [
        "tune",
        "evaluate_tuned",
        "check_guards",
        "evaluate_production",
        "compare",
        "deploy",
    ]
    assert ("stage", "t1", "compare", "Decision") in SEEN
    steps = [s for s in SEEN if s[0] == "step"]
    assert [s[3] for s in steps] == list(range(1, len(steps) + 1)) and all(s[2] == "lora" for s in steps)
    assert len(steps) >= 2 and all(isinstance(s[4], float) for s in steps)
    events = [json.loads(line) for line in (Path(run.run_dir) / "events.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in events if e["event"] == "stage"] == stages
    assert [e["loss"] for e in events if e["event"] == "step"] == [s[4] for s in steps]
    compare = next(e for e in events if e.get("stage") == "compare")["result"]
    assert compare["decision"] == decision.decision and compare["gate_metric"] == "accuracy"
    tuned_eval = next(e for e in events if e.get("stage") == "evaluate_tuned")["result"]
    assert "predictions" not in tuned_eval and tuned_eval["metrics"]["accuracy"] == decision.tuned["accuracy"]

    # the same run as MLflow's own client sees it: params, every rung's and the candidate's metrics with CIs, the
    # loss per step, the decision; the registry's production alias mirrored onto a model version of its files
    from mlflow import MlflowClient

    client = MlflowClient(store, registry_uri=store)
    (mlrun,) = client.search_runs([client.get_experiment_by_name("unit").experiment_id])
    assert mlrun.info.run_name == run.run_id and mlrun.data.tags["tunegate.run_id"] == run.run_id
    m, params, tags = mlrun.data.metrics, mlrun.data.params, mlrun.data.tags
    assert params["method.name"] == "lora" and params["gate.min_gain"] == str(cfg.gate.min_gain)
    for row in decision.models:  # each rung and the candidate: the metric with its CI, delta, costs
        key = row.name.replace(":", "_")
        assert m[f"{key}.accuracy"] == pytest.approx(row.metric) and m[f"{key}.accuracy.ci_low"] <= row.metric
        assert f"{key}.monthly_usd" in m and f"{key}.delta" in m
    assert m["decision.delta"] == pytest.approx(decision.delta) and tags["decision"] == decision.decision
    loss = client.get_metric_history(mlrun.info.run_id, "train.lora.loss")
    assert [x.step for x in loss] == [s[3] for s in steps] and [x.value for x in loss] == [s[4] for s in steps]
    if deployed.production_moved:
        version = client.get_model_version_by_alias("toy", "production")
        assert version.tags["tunegate.version"] == "1" and version.run_id == mlrun.info.run_id
        files = {a.path for a in client.list_artifacts(mlrun.info.run_id, "registry/toy/v1")}
        assert "registry/toy/v1/artifact" in files and "registry/toy/v1/model_card.md" in files


def test_a_backend_is_a_config_key_only_while_registered(backends, tmp_path, tiny_model_dir, toy_data):
    with pytest.raises(ConfigError, match="tracking.recorder.tagg: unknown key"):
        load_config(make_config(tmp_path, tiny_model_dir, toy_data, tracking={"recorder": {"tagg": "x"}}))
    unregister_tracker("recorder")
    with pytest.raises(ConfigError, match="tracking.recorder: unknown key"):
        load_config(make_config(tmp_path, tiny_model_dir, toy_data, tracking={"recorder": {}}))
    assert load_config(make_config(tmp_path, tiny_model_dir, toy_data)).tracking.events is None  # off by default


def test_an_mlflow_server_that_is_down_costs_one_warning_and_never_the_run(tmp_path, tiny_model_dir, toy_data, caplog):
    """Nothing listens on the port: the first stage warns at once (no HTTP retries), later ones are not tried."""
    import time

    from tests.integration.conftest import free_port
    from tunegate import stages, tracking

    uri = f"http://127.0.0.1:{free_port()}"
    cfg = load_config(make_config(tmp_path, tiny_model_dir, toy_data, tracking={"mlflow": {"uri": uri}}))
    run = stages.prepare_run(cfg)
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="tunegate.tracking"):
        for stage in ("validate_data", "plan", "compare"):
            tracking.stage_done(cfg.tracking, run, stage, None)
    assert time.perf_counter() - t0 < 10
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3 and "Mlflow failed to log validate_data" in warned[0]
    assert "failed earlier in this process; not tried again" in warned[2]
