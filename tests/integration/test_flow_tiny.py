"""The Prefect flow end to end on the tiny model: bad data stops it cleanly; good data registers."""

import json

import pytest

from tests.conftest import make_config
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
    assert not (tmp_path / "registry").exists()
    run_dir = next((tmp_path / "runs").iterdir())
    report = json.loads((run_dir / "validation.json").read_text())
    assert not report["ok"] and report["issues"][0]["check"] == "leakage" and len(report["issues"][0]["rows"]) == 14


def test_good_data_runs_every_stage(tmp_path, tiny_model_dir, toy_data, prefect_env):
    cfg = make_config(tmp_path, tiny_model_dir, toy_data)
    out = run_cli(["run", cfg], env=prefect_env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    logs = out.stdout + out.stderr
    for stage in ("prepare_run", "validate_data", "evaluate_baseline", "tune", "evaluate_tuned", "compare", "deploy"):
        assert stage in logs, stage
    run_dir = next((tmp_path / "runs").iterdir())
    decision = json.loads((run_dir / "decision.json").read_text())
    assert set(decision["baselines"]) == {"zero_shot", "few_shot"}
    versions = sorted(p.name for p in (tmp_path / "registry" / "toy").iterdir() if p.name.startswith("v"))
    assert versions == ["v1"]
    aliases_file = tmp_path / "registry" / "toy" / "aliases.json"
    moved = aliases_file.exists() and json.loads(aliases_file.read_text()).get("production") == 1
    assert moved == (decision["decision"] == "promote")


def test_method_only_change_reuses_cached_baselines(tmp_path, tiny_model_dir, toy_data, prefect_env):
    # a Prefect home of its own: the cache (result storage) must start empty
    prefect_env = {**prefect_env, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    cfg = make_config(tmp_path, tiny_model_dir, toy_data)
    first = run_cli(["run", cfg], env=prefect_env, cwd=tmp_path)
    assert first.returncode == 0 and "Cached" not in first.stdout + first.stderr
    second = run_cli(["run", cfg, "--set", "method.r=4", "--set", "gate.min_gain=0.5"], env=prefect_env, cwd=tmp_path)
    assert second.returncode == 0
    logs = second.stdout + second.stderr
    assert "evaluate_baseline[zero_shot]' - Finished in state Cached" in logs
    assert "evaluate_baseline[few_shot]' - Finished in state Cached" in logs
    runs = sorted((tmp_path / "runs").iterdir())
    d1, d2 = (json.loads((r / "decision.json").read_text()) for r in runs)
    assert d1["baselines"] == d2["baselines"]
    # a different prompt is a different baseline: no cache hit
    third = run_cli(["run", cfg, "--set", "prompt.input_prefix=Text: "], env=prefect_env, cwd=tmp_path)
    assert third.returncode == 0 and "Finished in state Cached" not in third.stdout + third.stderr
