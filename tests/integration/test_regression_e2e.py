"""Regression on the real SmolLM2: predict the customer rating an E2E NLG description states in words.

Data derived from ../shared/data/e2e_nlg by examples/e2e_rating/make_data.py (240 train rows
from trainset.csv, 64 eval rows from devset.csv: every prompting rung generates for every eval
row, the suite's time). The linear probe (a regression head on frozen features) must explain a
good share of the variance (R2 > 0.3) and beat the prompting baselines with a CI above zero; a
stated 5-star description must get a higher prediction than a stated low rating.
"""

import json
import shutil

import pytest

from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "examples" / "e2e_rating"
if not (ROOT.parent / "shared" / "data" / "e2e_nlg" / "trainset.csv").is_file():
    pytest.skip("../shared/data/e2e_nlg is not beside the checkout", allow_module_level=True)


def test_probe_regression_beats_prompting_and_predicts_numbers(tmp_path, prefect_env, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_data", EXAMPLE / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    make_data.main(["--out", str(tmp_path / "data"), "--train", "240", "--eval", "64"])
    shutil.copy(EXAMPLE / "config.yaml", tmp_path / "config.yaml")
    # the prompting rungs zero-shot and 2-shot (retrieved demonstrations are test_pipeline_sst2's and test_rag_kb's;
    # every prompting rung generates its answer for every eval row: the suite's time)
    sets = [
        "baselines.few_shot.k=2",
        "baselines.retrieved_few_shot.enabled=false",
        "guards=false",
    ]  # guards: test_guards.py, test_pipeline_sst2.py
    out = run_cli(
        ["run", tmp_path / "config.yaml", *(x for s in sets for x in ("--set", s))], env=prefect_env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = next((tmp_path / "runs").iterdir())
    d = json.loads((run_dir / "decision.json").read_text())
    assert d["gate_metric"] == "r2" and set(d["tuned"]) == {"r2", "mae", "rmse"}
    assert d["tuned"]["r2"] > 0.3, d["tuned"]  # measured 0.46 with 240 rows (0.56 with 400)
    assert d["tuned"]["r2"] > max(b["r2"] for b in d["baselines"].values())
    assert d["decision"] == "promote" and d["ci_low"] > 0
    # `tunegate predict` in this process: no second interpreter start and import (the CLI subprocess is test_cli's)
    from tunegate.cli import main

    capsys.readouterr()
    texts = [
        "The Eagle is a highly rated coffee shop with a 5 out of 5 customer rating.",
        "Avoid The Mill: it has a low customer rating.",
    ]
    args = ["predict", "--registry", str(tmp_path / "registry"), "--model", "e2e-rating@production", "--json"]
    assert main([*args, *texts]) == 0
    pred = capsys.readouterr()
    high, low = (json.loads(line)["value"] for line in pred.out.splitlines() if line.startswith("{"))
    assert high > low
