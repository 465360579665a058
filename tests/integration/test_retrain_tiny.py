"""The retrain flow and the data-change trigger on embedded Prefect (tiny model)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import make_config
from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration

# the rest of the story in one process (one embedded Prefect start instead of five)
STORY = """
import json, sys
from pathlib import Path
from tunegate.prefect_env import configure
configure()
from tunegate.flows.retrain import retrain, retrain_on_change, retrain_on_drift
from tunegate.traffic.log import RequestLog
cfg, train = {cfg!r}, Path({train!r})
served = RequestLog(Path(cfg).parent / "registry" / "_traffic" / "toy")
def serve(texts):
    for i, t in enumerate(texts):
        served.request(text=t, id=f"r{{i}}", version="toy@v2", route="production", endpoint="predict", answer="pos")
def say(step, state):
    print("STEP", step, state.type.value, "|", state.message, flush=True)
say("retrain-again", retrain(config_path=cfg, return_state=True))
say("tick-1", retrain_on_change(config_path=cfg, return_state=True))
say("tick-2", retrain_on_change(config_path=cfg, return_state=True))
train.write_text(train.read_text() + "an absolute joy,pos\\na dreary slog,neg\\n")
say("tick-new-rows", retrain_on_change(config_path=cfg, return_state=True))
serve([line.split(",")[0] for line in Path({eval!r}).read_text().splitlines()[1:]] * 5)
say("no-drift", retrain_on_drift(config_path=cfg, min_requests=20, return_state=True))
serve([f"URGENT! You have won a {{k}} prize, call 0800 now to claim" for k in range(40)])
say("drift", retrain_on_drift(config_path=cfg, min_requests=20, return_state=True))
"""


def story(cfg, train, evl, env, cwd) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", STORY.format(cfg=str(cfg), train=str(train), eval=str(evl))],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        timeout=1200,
    )
    steps = dict(ln[5:].split(" ", 1) for ln in out.stdout.splitlines() if ln.startswith("STEP "))
    assert len(steps) == 6, out.stdout[-2000:] + out.stderr[-3000:]
    return steps


def audit(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]


def test_retrain_skips_without_change_and_the_trigger_follows_the_data(tmp_path, tiny_model_dir, toy_data, prefect_env):
    cfg = make_config(
        tmp_path,
        tiny_model_dir,
        toy_data,
        gate={"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100},
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
    )
    # 1. nothing registered yet: the challenger is trained and (min_gain -1) promoted
    out = run_cli(["retrain", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0 and "PROMOTED" in out.stdout
    steps = story(cfg, toy_data["train"], toy_data["eval"], prefect_env, tmp_path)
    # 2. same data, same config: "no change", recorded, nothing trained
    assert steps["retrain-again"].startswith("COMPLETED | no change: the data hash")
    # 3. the trigger's first look: fingerprint unknown -> it runs retrain, which finds no change
    assert "data changed; retrain: no change" in steps["tick-1"]
    # 4. second look, same bytes: no retrain at all
    assert "data files unchanged" in steps["tick-2"]
    # 5. new rows arrive: the trigger retrains; the challenger must beat production v1 too
    assert steps["tick-new-rows"].startswith("COMPLETED | data changed; retrain: PROMOTED")
    # 6. the drift trigger: served inputs like the eval rows -> nothing; then other inputs -> a forced retrain
    assert "within the threshold" in steps["no-drift"] and "retrain" not in steps["no-drift"].split("|")[1]
    assert steps["drift"].startswith("COMPLETED | drift score") and "past the threshold" in steps["drift"]
    recs = audit(tmp_path)
    assert [r["status"] for r in recs] == ["completed", "skipped", "skipped", "completed", "completed"]
    assert [r["trigger"] for r in recs] == ["manual", "manual", "data-change", "data-change", "drift"]
    assert recs[3]["deployed"]["registered_version"] == 2 and recs[3]["data_hash"] != recs[0]["data_hash"]
    decision = json.loads((tmp_path / "runs" / recs[3]["run_id"] / "decision.json").read_text())
    assert [c["role"] for c in decision["comparisons"]] == ["best_baseline", "production"]
    assert decision["comparisons"][1]["opponent"] == "toy@v1"
    assert json.loads((tmp_path / "runs" / recs[4]["run_id"] / "change.json").read_text())["forced"] is True
    assert recs[4]["deployed"]["registered_version"] == 3
    assert sorted(p.name for p in (tmp_path / "registry" / "toy").glob("v*")) == ["v1", "v2", "v3"]
