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
    tracking = {"recorder": {"tag": "t1"}, "broken": True, "events": {}}
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


def test_a_backend_is_a_config_key_only_while_registered(backends, tmp_path, tiny_model_dir, toy_data):
    with pytest.raises(ConfigError, match="tracking.recorder.tagg: unknown key"):
        load_config(make_config(tmp_path, tiny_model_dir, toy_data, tracking={"recorder": {"tagg": "x"}}))
    unregister_tracker("recorder")
    with pytest.raises(ConfigError, match="tracking.recorder: unknown key"):
        load_config(make_config(tmp_path, tiny_model_dir, toy_data, tracking={"recorder": {}}))
    assert load_config(make_config(tmp_path, tiny_model_dir, toy_data)).tracking.events is None  # off by default
