"""The whole pipeline on the real SmolLM2 and real Prefect, on a slice of SST-2.

320 train rows (duplicates dropped), 120 of the example's 200 eval rows from the GLUE validation set
(the suite's time: every rung scores every eval row).
"""

import json
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration
CONFIG = ROOT / "examples" / "sst2" / "config.yaml"
N_EVAL = 120
if not (ROOT.parent / "shared" / "data" / "sst2" / "train.tsv").is_file():
    pytest.skip("../shared/data/sst2 is not beside the checkout", allow_module_level=True)


@pytest.fixture(scope="module")
def work(tmp_path_factory, prefect_env):
    work = tmp_path_factory.mktemp("sst2")
    sets = ["--set", f"registry.path={work / 'registry'}", "--set", f"output.dir={work / 'runs'}"]
    sets += ["--set", f"data.max_eval_rows={N_EVAL}"]
    # the guards on smaller probes than their defaults (the suite's time): 100 PIQA rows, 16 KL passages, 100 pairs
    sets += [
        "--set",
        "guards.retention.rows=100",
        "--set",
        "guards.retention.kl_rows=16",
        "--set",
        "guards.bias.rows=100",
    ]
    first = run_cli(["run", CONFIG, *sets], env=prefect_env, cwd=work)
    return {"dir": work, "sets": sets, "first": first, "env": prefect_env}


def run_dirs(work) -> list[Path]:
    return sorted((work["dir"] / "runs").iterdir())


def test_first_run_completes_and_decision_is_complete(work):
    assert work["first"].returncode == 0, work["first"].stderr[-3000:]
    # offline, bitsandbytes' optional hub kernel (AVX-512 BF16 CPUs) is not fetched: no warning about it
    assert "Failed to load CPU gemm_4bit_forward" not in work["first"].stderr
    d = json.loads((run_dirs(work)[0] / "decision.json").read_text())
    for key in (
        "decision",
        "reasons",
        "gate_metric",
        "baselines",
        "best_baseline",
        "tuned",
        "delta",
        "ci_low",
        "ci_high",
        "costs",
        "provenance",
    ):
        assert key in d, key
    for key in ("data_hash", "config_hash", "code_version", "packages", "model_id"):
        assert d["provenance"][key], key
    assert d["provenance"]["n_eval"] == N_EVAL
    # no selection split here: the best rung was chosen on the judging rows, and the gate's CI corrects for it
    sel = d["selection"]
    assert sel["split"] == "eval" and sel["candidates"] == 6 and sel["correction"].startswith("max-statistic")
    assert "no selection split" in " ".join(d["reasons"])
    assert d["ci_low"] <= d["delta"] <= d["ci_high"]
    assert 0.0 <= d["baselines"]["zero_shot"]["accuracy"] <= 1.0
    assert d["costs"]["few_shot"]["prompt_tokens_per_request"] > d["costs"]["tuned:lora"]["prompt_tokens_per_request"]
    (vs_best,) = d["comparisons"]  # no production model yet: the best baseline is the only bar
    assert vs_best["opponent"] == d["best_baseline"] and vs_best["mcnemar_p"] is not None and vs_best["mde"] > 0
    refused = [g["guard"] for g in d["guards"] if g["block"] and g["status"] == "failed"]
    wins = d["ci_low"] > 0.0 and vs_best["mcnemar_p"] < 0.05
    assert (PROMOTED := d["decision"] == "promote") == (wins and not refused)
    assert ("PROMOTED" if PROMOTED else "NOT PROMOTED") in work["first"].stdout
    assert d["headline"] in work["first"].stdout  # the one-sentence decision is what the user reads first
    # the cost model: measured tokens and times, configured prices, a break-even answer
    assert {c["name"] for c in d["cost_model"]} == set(d["baselines"]) | {"tuned:lora"}
    assert d["break_even"]["reason"] and (d["break_even"]["requests"] is None) == d["break_even"]["reason"].startswith(
        "never"
    )
    # the report: one self-contained html beside the markdown, and an audit record in the registry
    run = run_dirs(work)[0]
    plots = [g["plot"] for g in d["guards"] if g["plot"]]
    assert (run / "report.html").read_text().count("data:image/png;base64,") == 4 + len(plots)
    audit = [json.loads(x) for x in (work["dir"] / "registry" / "audit.jsonl").read_text().splitlines()]
    assert [a["run_id"] for a in audit] == [run.name] and audit[0]["decision"] == d["decision"]


def test_the_guards_measure_what_tuning_may_break_on_the_real_model(work):
    """Every guard on SmolLM2 (SST-2 LoRA), base vs candidate on the same rows; the decision names each; the audit
    re-judges them from guards.json."""
    run = run_dirs(work)[0]
    d = json.loads((run / "decision.json").read_text())
    by = {g["guard"]: g for g in d["guards"]}
    assert list(by) == ["retention", "slices", "bias", "injection", "overfitting"]
    assert all(g["sentence"] in d["reasons"] for g in d["guards"])
    retention = {m["name"]: m for m in by["retention"]["measures"]}
    piqa = retention["piqa"]
    assert piqa["n"] == 100 and 0.55 < piqa["base"] < 0.8  # SmolLM2-135M is above chance on PIQA
    assert piqa["ci_low"] <= piqa["delta"] <= piqa["ci_high"] and piqa["rows_needed"] > 0
    assert retention["KL on neutral text"]["candidate"] > 0
    bias = {m["name"].split(" (")[0]: m for m in by["bias"]["measures"]}
    assert bias["stereotype preference"]["n"] == 100 and 0.3 < bias["stereotype preference"]["base"] < 0.8
    assert bias["counterfactual flips"]["n"] > 5  # reviews that mention he/she, a man, an actress...
    assert by["injection"]["measures"][0]["n"] == N_EVAL
    slices = {m["name"]: m for m in by["slices"]["measures"]}
    assert {"label=0", "label=1"} <= set(slices) and slices["label=0"]["tolerance"] == 0.05  # 60 rows: judged
    assert sum(1 for n in slices if n.startswith("length Q")) == 4
    assert by["overfitting"]["status"] == "not_measured"  # classification, no selection split
    report = (run / "report.md").read_text()
    assert "## What tuning may break (guards)" in report and (run / "plots" / "guard_retention.png").is_file()
    verified = run_cli(
        ["audit", "verify", run.name, "--registry", work["dir"] / "registry"], env=work["env"], cwd=work["dir"]
    )
    assert verified.returncode == 0 and "guard retention recomputed" in verified.stdout, verified.stdout


def test_loss_fell_and_scores_are_on_the_same_rows(work):
    run = run_dirs(work)[0]
    rows = {}
    for name in ("zero_shot", "few_shot", "tuned_lora"):
        preds = [json.loads(line) for line in (run / "predictions" / f"{name}.jsonl").read_text().splitlines()]
        rows[name] = [p["row"] for p in preds]
        acc = sum(p["prediction"] == p["reference"] for p in preds) / len(preds)
        d = json.loads((run / "decision.json").read_text())
        recorded = d["tuned"] if name == "tuned_lora" else d["baselines"][name]
        assert acc == pytest.approx(recorded["accuracy"])  # the metric is computed from these predictions
    assert rows["zero_shot"] == rows["few_shot"] == rows["tuned_lora"] and len(rows["zero_shot"]) == N_EVAL
    report = (run / "report.md").read_text()
    assert "loss: first" in report
    meta = json.loads((run / "artifact" / "tunegate.json").read_text())
    assert meta["method"] == "lora"
    d = json.loads((run / "decision.json").read_text())
    # the tuned model must clearly beat the always-"positive" zero-shot baseline on SST-2
    assert d["tuned"]["accuracy"] > d["baselines"]["zero_shot"]["accuracy"] + 0.1


def test_registry_and_predict(work):
    d = json.loads((run_dirs(work)[0] / "decision.json").read_text())
    reg = work["dir"] / "registry" / "sst2-sentiment"
    assert (reg / "v1" / "artifact" / "adapter" / "adapter_config.json").is_file()
    assert (reg / "v1" / "model_card.md").is_file()
    aliases = json.loads((reg / "aliases.json").read_text()) if (reg / "aliases.json").exists() else {}
    assert (aliases.get("production") == 1) == (d["decision"] == "promote")
    out = run_cli(
        [
            "predict",
            "--registry",
            work["dir"] / "registry",
            "--model",
            "sst2-sentiment@1",
            "--json",
            "a gorgeous, moving and funny film",
            "a dull, lifeless and boring mess",
        ],
        env=work["env"],
        cwd=work["dir"],
    )
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [a["label"] for a in answers] == ["1", "0"]
    assert all(abs(sum(a["probabilities"].values()) - 1) < 1e-6 for a in answers)


def test_gate_refuses_keeps_production_and_reuses_cached_baselines(work):
    reg = work["dir"] / "registry" / "sst2-sentiment"
    before = (reg / "aliases.json").read_text() if (reg / "aliases.json").exists() else None
    # only the method (steps) and the gate change: the baselines must come from the cache
    out = run_cli(
        ["run", CONFIG, *work["sets"], "--set", "method.max_steps=3", "--set", "gate.min_gain=0.9"]
        + ["--set", "guards=false"],  # the first run checked them
        env=work["env"],
        cwd=work["dir"],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "NOT PROMOTED" in out.stdout
    d = json.loads((run_dirs(work)[-1] / "decision.json").read_text())
    assert d["decision"] == "reject" and any("0.9" in r for r in d["reasons"])
    # the second run also met the first run's model when it was promoted (champion on the same rows)
    first = json.loads((run_dirs(work)[0] / "decision.json").read_text())
    if first["decision"] == "promote":
        assert d["production"] == "sst2-sentiment@v1" and d["comparisons"][1]["role"] == "production"
    # both runs are in the audit log, and the second one verifies from its stored predictions
    listed = run_cli(["audit", "--json", "--registry", work["dir"] / "registry"], env=work["env"], cwd=work["dir"])
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [p.name for p in run_dirs(work)]
    verified = run_cli(
        ["audit", "verify", run_dirs(work)[-1].name, "--registry", work["dir"] / "registry"],
        env=work["env"],
        cwd=work["dir"],
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    after = (reg / "aliases.json").read_text() if (reg / "aliases.json").exists() else None
    assert after == before  # production did not move
    assert json.loads((reg / "v2" / "meta.json").read_text())["decision"] == "reject"
    logs = out.stdout + out.stderr
    assert logs.count("Cached") >= 2, "zero-shot and few-shot baselines were recomputed"


def test_the_baseline_is_the_strongest_rung_of_the_ladder(work):
    import polars as pl

    run = run_dirs(work)[0]
    d = json.loads((run / "decision.json").read_text())
    rungs = ["zero_shot", "few_shot", "retrieved_few_shot_hybrid"]
    expected = [n + c for n in rungs for c in ("", "_calibrated")]
    assert list(d["baselines"]) == expected
    best = max(expected, key=lambda n: d["baselines"][n]["accuracy"])
    assert d["baselines"][d["best_baseline"]]["accuracy"] == d["baselines"][best]["accuracy"]
    report = (run / "report.md").read_text()
    assert "## Baseline ladder" in report and all(f"| {n} |" in report for n in expected)
    # calibration corrects the few-shot prompt's label bias without eval labels (measured: 0.475 -> 0.620)
    preds = {
        n: [json.loads(x) for x in (run / "predictions" / f"{n}.jsonl").read_text().splitlines()] for n in expected
    }
    assert len({p["prediction"] for p in preds["few_shot_calibrated"]}) == 2
    assert d["baselines"]["few_shot_calibrated"]["accuracy"] > d["baselines"]["few_shot"]["accuracy"] + 0.05
    # retrieved demonstrations: 4 train rows per eval row, never the eval text itself (leakage guard), index saved
    train = pl.read_parquet(run / "data" / "train.parquet")
    evl = pl.read_parquet(run / "data" / "eval.parquet")
    train_text = dict(zip(train.get_column("_row").to_list(), train.get_column("text").to_list()))
    eval_text = dict(zip(evl.get_column("_row").to_list(), evl.get_column("text").to_list()))
    for p in preds["retrieved_few_shot_hybrid"]:
        assert len(p["retrieved"]) == 4
        assert all(
            train_text[int(r.split(":")[1])].strip().lower() != eval_text[p["row"]].strip().lower()
            for r in p["retrieved"]
        )
    assert (run / "indexes" / "retrieved_few_shot_hybrid" / "embeddings.npy").is_file()
    assert d["costs"]["retrieved_few_shot_hybrid"]["retrieval_ms_per_request"] > 0


def test_a_version_scores_the_same_in_float32_and_bf16(work):
    """Trained on one kind of machine, used on another: on a machine whose precision is not the run's (float32
    and bf16 are what `hardware: auto` picks on CPUs without / with bf16 hardware) the registry re-score
    reproduces the run (it scores in the run's recorded precision), and serving in that machine's precision
    agrees with the run on the metric (individual near-tie rows may flip between float32 and bf16). The run's
    own precision is what the deploy stage's re-score already used."""
    import polars as pl
    import yaml

    from tunegate.answering import AnswerSpec
    from tunegate.config import parse_config
    from tunegate.hardware import using
    from tunegate.promotion import CONFIG, EVAL_ROWS, EXPECTED, rescore, score_version
    from tunegate.records import Placement
    from tunegate.registry import Registry

    d = json.loads((run_dirs(work)[0] / "decision.json").read_text())
    assert d["provenance"]["hardware"]["dtype"] in ("float32", "bfloat16")  # the record says which path ran
    reg = Registry(work["dir"] / "registry")
    info = reg.get("sst2-sentiment", 1)
    expected = json.loads((info.path / EXPECTED).read_text())
    assert expected["dtype"] == d["provenance"]["hardware"]["dtype"]
    cfg = parse_config(yaml.safe_load((info.path / CONFIG).read_text()), config_dir=info.path)
    eval_df = pl.read_parquet(info.path / EVAL_ROWS)
    # this machine in the other precision: the re-score still runs in the recorded one and reproduces the run
    other = "bfloat16" if expected["dtype"] == "float32" else "float32"
    with using(Placement(dtype=other, reason="test")):
        r = rescore(reg, "sst2-sentiment", 1)
        assert r.reproduced, r.note
        # serving in that precision (100 of the 120 rows: on a CPU without bf16 hardware bf16 is ~5x slower)
        rows = eval_df.head(100)
        served = score_version(
            info, AnswerSpec.from_config(cfg), rows, config_dir=info.path, name="served", kind="tuned"
        )
    # the other precision flips near-tie rows (measured: 14 of 200, accuracy 0.84 in float32 vs 0.83 in bf16);
    # a broken path (adapter lost, wrong prompt or dtype) would disagree far more
    same = [p.prediction == expected["predictions"][str(p.row)] for p in served.predictions]
    assert len(same) == 100 and sum(same) / len(same) >= 0.9, (other, sum(same))
    refs = dict(zip(rows.get_column("_row").to_list(), rows.get_column("label").to_list()))
    run_acc = sum(expected["predictions"][str(r)] == str(ref) for r, ref in refs.items()) / len(refs)
    assert abs(served.metrics["accuracy"] - run_acc) <= 0.04, (served.metrics["accuracy"], run_acc)
