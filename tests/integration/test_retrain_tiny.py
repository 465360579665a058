"""The retrain flow and the data-change trigger on embedded Prefect (tiny model)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import make_config
from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration

TICK = """
from tunegate.prefect_env import configure
configure()
from flows.retrain import retrain_on_change
state = retrain_on_change(config_path={cfg!r}, return_state=True)
print("FINAL", state.type.value, "|", state.message)
"""


def tick(cfg, env, cwd) -> str:
    out = subprocess.run([sys.executable, "-c", TICK.format(cfg=str(cfg))], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(ROOT)}, cwd=cwd, timeout=900)
    final = [ln for ln in out.stdout.splitlines() if ln.startswith("FINAL")]
    assert final, out.stdout[-2000:] + out.stderr[-3000:]
    return final[-1]


def audit(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "registry" / "audit.jsonl").read_text().splitlines()]


def test_retrain_skips_without_change_and_the_trigger_follows_the_data(tmp_path, tiny_model_dir, toy_data, prefect_env):
    cfg = make_config(tmp_path, tiny_model_dir, toy_data, gate={"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100},
                      baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False})
    # 1. nothing registered yet: the challenger is trained and (min_gain -1) promoted
    out = run_cli(["retrain", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0 and "PROMOTED" in out.stdout
    # 2. same data, same config: "no change", recorded, nothing trained
    out = run_cli(["retrain", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0 and "no change: the data hash" in out.stdout
    assert sorted(p.name for p in (tmp_path / "registry" / "toy").glob("v*")) == ["v1"]
    # 3. the trigger's first look: fingerprint unknown -> it runs retrain, which finds no change
    assert "data changed; retrain: no change" in tick(cfg, prefect_env, tmp_path)
    # 4. second look, same bytes: no retrain at all
    assert "data files unchanged" in tick(cfg, prefect_env, tmp_path)
    # 5. new rows arrive: the trigger retrains; the challenger must beat production v1 too
    train = toy_data["train"]
    train.write_text(train.read_text() + "an absolute joy,pos\na dreary slog,neg\n")
    assert "FINAL COMPLETED | data changed; retrain: PROMOTED" in tick(cfg, prefect_env, tmp_path)
    recs = audit(tmp_path)
    assert [r["status"] for r in recs] == ["completed", "skipped", "skipped", "completed"]
    assert [r["trigger"] for r in recs] == ["manual", "manual", "data-change", "data-change"]
    assert recs[3]["deployed"]["registered_version"] == 2 and recs[3]["data_hash"] != recs[0]["data_hash"]
    decision = json.loads((tmp_path / "runs" / recs[3]["run_id"] / "decision.json").read_text())
    assert [c["role"] for c in decision["comparisons"]] == ["best_baseline", "production"]
    assert decision["comparisons"][1]["opponent"] == "toy@v1"
    # 6. --force retrains unchanged data
    out = run_cli(["retrain", cfg, "--force"], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0 and "forced" in (tmp_path / "runs" / audit(tmp_path)[-1]["run_id"] / "change.json").read_text()
    assert audit(tmp_path)[-1]["deployed"]["registered_version"] == 3
