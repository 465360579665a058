"""The methods beside LoRA on the real SmolLM2 and a slice of SST-2, through `tunegate compare` (real Prefect).

200 train rows (duplicates dropped), of which 40 are the selection split (the winner is chosen
there; 10 optimizer steps on the other 160: batch 16 for QLoRA, 8 for prompt tuning), 100 eval rows
from the GLUE validation set. Each method trains, its loss falls (the probe: held-out accuracy above the majority
rate), and it is scored on the same rows; QLoRA's base weights take less memory
than the unquantized base that LoRA and prompt tuning load. LoRA on the real model is
test_pipeline_sst2's run (same example config), so it is not trained a second time here.
"""

import json

import pytest

from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration
CONFIG = ROOT / "examples" / "sst2" / "config.yaml"
METHODS = ("qlora", "prompt_tuning", "linear_probe")
# prompt tuning: 10 optimizer steps at batch 8 (80 of the 160 rows; the suite's time); QLoRA keeps batch 16 (at 80
# rows it scored 0.51 once: too close to chance for the check below)
LOOP = {"prompt_tuning": ", batch_size: 8, max_steps: 10"}
if not (ROOT.parent / "shared" / "data" / "sst2" / "train.tsv").is_file():
    pytest.skip("../shared/data/sst2 is not beside the checkout", allow_module_level=True)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, prefect_env):
    work = tmp_path_factory.mktemp("sst2-compare")
    out = run_cli(
        [
            "compare",
            CONFIG,
            "--set",
            f"output.dir={work / 'runs'}",
            "--set",
            "data.max_train_rows=200",
            "--set",
            "data.max_eval_rows=100",
            "--set",
            "data.dev_fraction=0.2",  # the winner is chosen on 40 selection rows, judged on the 100 eval rows
            "--set",
            "compare=[" + ", ".join(f"{{name: {m}, max_length: 128{LOOP.get(m, '')}}}" for m in METHODS) + "]",
            "--set",
            "guards=false",  # test_pipeline_sst2 checks them on the real model; here: the methods
            # the ladder beyond zero-shot is tested by test_pipeline_sst2; here: the methods
            "--set",
            "baselines.few_shot.enabled=false",
            "--set",
            "baselines.retrieved_few_shot.enabled=false",
            "--set",
            "baselines.calibrated=false",
        ],
        env=prefect_env,
        cwd=work,
        timeout=2400,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = next((work / "runs").iterdir())
    return {
        "out": out,
        "dir": run_dir,
        "rows": {r["name"]: r for r in json.loads((run_dir / "compare.json").read_text())["rows"]},
    }


def test_the_winner_is_chosen_on_the_selection_split_and_judged_on_eval(comparison):
    result = json.loads((comparison["dir"] / "compare.json").read_text())
    w = result["winner"]
    done = {n: r for n, r in comparison["rows"].items() if r["kind"] == "method" and r["status"] == "completed"}
    assert w["chosen_on"] == "dev" and w["candidates"] == len(done) == 3 and w["confidence"] == 0.95
    assert w["name"] == max(done, key=lambda n: done[n]["selection_metric"])  # on the selection rows, not eval
    assert w["ci_low"] <= w["delta"] <= w["ci_high"] and "chosen on the selection split" in result["summary"]
    preds = comparison["dir"] / "predictions"
    assert 38 <= len((preds / "zero_shot.selection.jsonl").read_text().splitlines()) <= 40
    assert (preds / f"tuned_{w['name']}.selection.jsonl").is_file()


@pytest.mark.parametrize("name", ["qlora", "prompt_tuning"])
def test_adapter_methods_train_with_falling_loss_and_are_scored(comparison, name):
    r = comparison["rows"][name]
    assert r["status"] == "completed", r.get("error")
    assert r["last_loss"] < r["first_loss"] * 0.7, (r["first_loss"], r["last_loss"])
    assert r["n_steps"] >= 10
    assert 0.5 < r["metric"] <= 1.0 and r["ci_low"] <= r["metric"] <= r["ci_high"]
    preds = (comparison["dir"] / "predictions" / f"tuned_{name}.jsonl").read_text().splitlines()
    assert len(preds) == 100


def test_linear_probe_beats_the_majority_rate_on_held_out_rows(comparison):
    r = comparison["rows"]["linear_probe"]
    assert r["status"] == "completed", r.get("error")
    d = r["details"]
    assert d["val_accuracy"] > d["majority_rate"] and d["val_rows"] >= 20  # 15% of the 160 rows held out
    # and on the eval rows, against the eval set's own majority rate
    preds = [
        json.loads(x) for x in (comparison["dir"] / "predictions" / "tuned_linear_probe.jsonl").read_text().splitlines()
    ]
    refs = [p["reference"] for p in preds]
    majority = max(refs.count(v) for v in set(refs)) / len(refs)
    assert r["metric"] > majority + 0.05


def test_qlora_base_weights_take_less_memory_than_lora(comparison):
    rows = comparison["rows"]
    # the unquantized base (prompt tuning loads it as LoRA does) is float32 (540 MB) on CPUs without bf16 hardware
    # and bf16 (257-266 MB) on the others; QLoRA's is 4-bit linear layers plus float32 embeddings (~170 MB) on both
    assert rows["qlora"]["base_weights_mb"] < 0.7 * rows["prompt_tuning"]["base_weights_mb"]


def test_table_and_chart_cover_every_method_and_baseline(comparison):
    assert set(comparison["rows"]) == {"zero_shot", *METHODS}
    md = (comparison["dir"] / "compare.md").read_text()
    for name in METHODS:
        assert f"| {name} | completed |" in md
    assert (comparison["dir"] / "compare.png").stat().st_size > 10_000
    plan = json.loads((comparison["dir"] / "plan.json").read_text())
    assert {e["method"] for e in plan["estimates"]} == set(METHODS)
    for name in METHODS:
        assert comparison["rows"][name]["est_train_seconds"] > 0
