"""The run report (md + self-contained html), the champion comparison and the audit trail, on the tiny model."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_config
from tests.unit.test_cli import tunegate
from tunegate import stages
from tunegate.audit import AuditLog, verify
from tunegate.config import load_config
from tunegate.ladder.core import baseline_rungs
from tunegate.records import GateInputs, RunOutcome
from tunegate.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
CHEAP = {"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False, "batch_size": 4}


def pipeline(cfg):
    """The flow's stages in order, as flows/pipeline.py wires them, without Prefect."""
    run = stages.prepare_run(cfg)
    val = stages.validate_data(cfg, run)
    if not val.ok:
        return (
            run,
            stages.record_audit(cfg, run, RunOutcome(status="failed", failed_stage="validate_data", error=val.summary)),
            None,
        )
    base = {}
    for r in baseline_rungs(cfg.baselines, cfg.ladder_context()):
        base[r.name] = stages.evaluate_baseline(cfg, run, val.dataset, r, base[r.base.name] if r.base else None)
    tuned = stages.tune(cfg, run, val.dataset, progress=False)
    tuned_eval = stages.evaluate_tuned(cfg, run, val.dataset, tuned)
    champion = stages.evaluate_production(cfg, run, val.dataset)
    decision = stages.compare(
        cfg,
        run,
        val.dataset,
        GateInputs(baselines=list(base.values()), tuned_eval=tuned_eval, tuned=tuned, production=champion),
    )
    deployed = stages.deploy(cfg, run, decision, tuned, champion)
    return (
        run,
        stages.record_audit(
            cfg, run, RunOutcome(status="completed", decision=decision, deployment=deployed, tuned=tuned)
        ),
        decision,
    )


@pytest.fixture
def two_runs(tmp_path, tiny_model_dir, toy_data):
    """Run 1 is promoted (min_gain -1); run 2 must also beat run 1's model, now in production."""
    cfg = load_config(
        make_config(
            tmp_path, tiny_model_dir, toy_data, baselines=CHEAP, gate={"min_gain": -1.0, "bootstrap_samples": 200}
        )
    )
    first = pipeline(cfg)
    cfg2 = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            baselines=CHEAP,
            gate={"min_gain": 0.5, "bootstrap_samples": 200, "objective": "cost", "min_saving": 0.2},
            method={"seed": 1, "early_stopping": {"patience": 1, "every": 1}},
            data={"dev_fraction": 0.3},  # run 2 chooses on a selection split, stops early on it, is judged on cost
        )
    )
    second = pipeline(cfg2)
    return cfg2, first, second


def test_report_audit_and_verify(two_runs, tmp_path):
    cfg, (run1, rec1, d1), (run2, rec2, d2) = two_runs
    assert d1.decision == "promote" and d1.production is None  # no champion yet
    # run 2 met the champion: production v1 scored on the same rows, compared, and it stays
    assert d2.production == "toy@v1" and [c.role for c in d2.comparisons] == ["best_baseline", "production"]
    assert d2.decision == "reject" and Registry(cfg.registry.path).aliases("toy")["production"] == 1
    assert (Path(run2.run_dir) / "predictions" / "toy@v1.jsonl").is_file()
    # the gate as declared in the config, with when and in which config
    assert d2.gate["min_gain"] == 0.5 and d2.gate["alpha"] == 0.05 and d2.gate["config_hash"] == run2.config_hash
    assert d2.gate["declared_at"] == run2.started_at
    # run 2 chose on its selection split and was judged on cost: both recorded, both re-decided by verify below
    assert d2.selection["split"] == "dev" and d2.selection["selection_rows"] > 0 and d2.selection["correction"] is None
    assert d1.selection["split"] == "eval"
    assert d2.objective == "cost" and d2.cost_check is not None and d2.gate["objective"] == "cost"
    assert (Path(run2.run_dir) / "predictions" / "zero_shot.selection.jsonl").is_file()
    assert (Path(run2.run_dir) / "predictions" / "tuned_lora.selection.jsonl").is_file()

    # report.md: the decision in one sentence at the top, the tables, the plots
    run_dir = Path(run2.run_dir)
    md = (run_dir / "report.md").read_text().splitlines()
    assert md[2] == f"**{d2.headline}**" and d2.headline.startswith("Tuning did not pay off")
    text = "\n".join(md)
    for section in (
        "## The gate (declared in the config before the run)",
        "## Every rung and candidate",
        "## Cost and break-even",
        "## Training",
        "## Data validation",
        "## Provenance",
        "## Deployment",
    ):
        assert section in text
    for plot in ("metric", "quality_vs_cost", "break_even"):
        assert (run_dir / "plots" / f"{plot}.png").stat().st_size > 5000
    # report.html: self-contained (every image embedded, nothing fetched from elsewhere)
    html = (run_dir / "report.html").read_text()
    srcs = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(?!data:)', html) and "<table>" in html and d2.headline.split(":")[0] in html

    # the audit log: one record per run, chained, evidence copied into the registry
    log = AuditLog(cfg.registry.path)
    records = log.records()
    assert [r.run_id for r in records] == [run1.run_id, run2.run_id] and records[1].prev_hash and not log.chain_breaks()
    assert (
        rec2.decision == "reject"
        and rec2.deployed["production_version"] == 1
        and rec2.data_hash == d2.provenance["data_hash"]
    )
    assert set(rec2.metrics) == {"zero_shot", "tuned:lora", "toy@v1"} and rec2.cost["train_usd"] > 0
    assert rec2.evidence_dir == f"audit/{run2.run_id}"  # relative: a copied registry checks its own files
    ev = log.evidence_path(rec2)
    assert ev == Path(cfg.registry.path) / "audit" / run2.run_id and (ev / "report.html").is_file()
    assert verify(log, run2.run_id).ok and verify(log, run1.run_id[:17]).ok  # a unique prefix is enough
    assert "predictions/zero_shot.selection.jsonl" in rec2.evidence
    assert "the selection split" in text and "Rule (objective cost)" in text
    assert "early stopping on the selection split" in text and "**" in text.split("early stopping on the")[1][:200]

    # tampering is caught: a changed prediction, then an edited line
    pred = ev / "predictions" / "tuned_lora.jsonl"
    original = pred.read_text()
    rows = [json.loads(x) for x in original.splitlines()]
    rows[0]["prediction"] = "neg" if rows[0]["prediction"] == "pos" else "pos"
    pred.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bad = verify(log, run2.run_id)
    assert not bad.ok and any(name.startswith("evidence") and not ok for name, ok, _ in bad.checks)
    pred.write_text(original)
    # a copy of the registry, edited: verify checks the copy's files, not the original's
    copy = tmp_path / "copied-registry"
    shutil.copytree(cfg.registry.path, copy)
    pred.rename(pred.with_suffix(".moved"))  # the original is out of reach: only the copy's files can be read
    copied_log = AuditLog(copy)
    assert verify(copied_log, run2.run_id).ok
    (copy / "audit" / run2.run_id / "predictions" / "tuned_lora.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    assert not verify(copied_log, run2.run_id).ok
    pred.with_suffix(".moved").rename(pred)
    lines = log.path.read_text().splitlines()
    first = json.loads(lines[0])
    first["decision"] = "reject"
    log.path.write_text("\n".join([json.dumps(first, sort_keys=True), *lines[1:]]) + "\n")
    v = verify(log, run1.run_id)
    assert not v.ok
    failed = {name for name, ok, _ in v.checks if not ok}
    # the chain, the decision recomputed from the predictions (still "promote") and decision.json all disagree
    assert failed == {"hash chain of the log", "decision", "recorded decision = decision.json"}
    log.path.write_text("\n".join(lines) + "\n")
    assert verify(log, run1.run_id).ok

    # the newest line has no successor to chain it: its own hash, audit.head and the evidence catch an edit
    from tunegate.audit import HEAD, line_hash, record_hash

    newest = json.loads(lines[-1])
    newest["base_model"], newest["cost"]["train_usd"] = "some-other-model", 0.0
    edited = json.dumps(newest, sort_keys=True)
    log.path.write_text("\n".join([*lines[:-1], edited]) + "\n")
    v = verify(log, run2.run_id)
    failed = {name for name, ok, _ in v.checks if not ok}
    assert failed == {
        "hash chain of the log",
        "recorded base model = config.yaml's model",
        "recorded training cost (USD) = decision.json",
    }
    assert any("does not match its record_hash" in d for name, ok, d in v.checks if not ok)
    shown = tunegate("audit", "show", run2.run_id, "--registry", cfg.registry.path)  # shown, but not as written
    assert shown.returncode == 0 and "some-other-model" in shown.stdout
    assert "WARNING: the audit log does not verify" in shown.stderr and "may have been edited" in shown.stderr
    newest["record_hash"] = record_hash(newest)  # the record re-hashed: audit.head still disagrees
    edited = json.dumps(newest, sort_keys=True)
    log.path.write_text("\n".join([*lines[:-1], edited]) + "\n")
    assert log.chain_breaks() == [f"line 2 (the newest) does not match the hash kept in {HEAD}"]
    (log.root / HEAD).write_text(json.dumps({"lines": 2, "head": line_hash(edited)}))  # and audit.head too
    assert not log.chain_breaks() and not verify(log, run2.run_id).ok  # the evidence still disagrees
    log.path.write_text("\n".join(lines[:-1]) + "\n")  # the newest line dropped
    assert log.chain_breaks() == [f"{HEAD} records 2 line(s), the log has 1"]
    log.path.write_text("\n".join(lines) + "\n")
    (log.root / HEAD).write_text(json.dumps({"lines": 2, "head": line_hash(lines[-1])}))
    assert verify(log, run2.run_id).ok

    # the CLI
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = tunegate("audit", "--registry", cfg.registry.path, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert (
        run1.run_id in out.stdout
        and run2.run_id in out.stdout
        and "promoted" in out.stdout
        and "rejected" in out.stdout
    )
    assert "v1 -> production" in out.stdout and "v2 (production v1)" in out.stdout
    js = json.loads(tunegate("audit", "list", "--json", "--model", "toy", "--registry", cfg.registry.path).stdout)
    assert [r["run_id"] for r in js] == [run1.run_id, run2.run_id]
    assert (
        "no audit records matching model=other"
        in tunegate("audit", "--model", "other", "--registry", cfg.registry.path).stdout
    )
    assert (
        json.loads(tunegate("audit", "--json", "--since", "2999-01-01", "--registry", cfg.registry.path).stdout) == []
    )
    show = tunegate("audit", "show", run2.run_id, "--registry", cfg.registry.path)
    assert show.returncode == 0 and d2.headline in show.stdout and str(ev / "report.html") in show.stdout
    ok = tunegate("audit", "verify", run2.run_id, "--registry", cfg.registry.path)
    assert ok.returncode == 0 and "verified" in ok.stdout and "MISMATCH" not in ok.stdout
    missing = tunegate("audit", "show", "nope", "--registry", cfg.registry.path)
    assert (
        missing.returncode == 1
        and "no audit record for run 'nope'" in missing.stderr
        and "Traceback" not in missing.stderr
    )
    del env


def test_failed_runs_are_audited_too(tmp_path, tiny_model_dir):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngood,pos\nx,zzz\n")
    cfg = load_config(make_config(tmp_path, tiny_model_dir, {"train": bad}, baselines=CHEAP))
    run, rec, decision = pipeline(cfg)
    assert (
        decision is None
        and rec.status == "failed"
        and rec.failed_stage == "validate_data"
        and "unknown_labels" in rec.error
    )
    (only,) = AuditLog(cfg.registry.path).records()
    assert only.run_id == run.run_id and only.status == "failed" and "validation.md" in only.evidence
    v = verify(AuditLog(cfg.registry.path), run.run_id)
    assert v.ok and "nothing to recompute" in v.checks[-1][2]
    assert Registry(cfg.registry.path).versions("toy") == []  # nothing registered


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    """The html renders offline in a real browser into a screenshot that is not blank."""
    _, _, (run2, _, _) = two_runs
    png = tmp_path / "report.png"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "screenshot_report.py"),
            str(Path(run2.run_dir) / "report.html"),
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "distinct colours" in out.stdout and png.stat().st_size > 50_000


def test_headerless_tsv_reads_with_configured_columns(tmp_path):
    """SMS Spam's layout: `label<TAB>text`, no header, no file extension; the first line is data."""
    from tunegate.data import read_table

    f = tmp_path / "SMSSpamCollection"
    f.write_text("ham\tGo until jurong point\nspam\tFree entry in 2 a wkly comp\n")
    df = read_table(f, "tsv", ["label", "text"])
    assert df.columns[1:] == ["label", "text"] and df.get_column("label").to_list() == ["ham", "spam"]
    assert df.get_column(df.columns[0]).to_list() == [1, 2]  # row numbers: line numbers of the file
    assert read_table(f, "tsv").height == 1  # without `columns` the first line would be taken as the header


def _append_many(root, tag, n):
    from tunegate.audit import AuditLog
    from tunegate.records import AuditRecord

    log = AuditLog(root)
    for i in range(n):
        log.append(
            AuditRecord(run_id=f"{tag}-{i}", time="", model_name="m", status="failed", failed_stage="plan", error="x")
        )


def test_concurrent_appends_keep_every_line_and_the_chain(tmp_path):
    """Two processes appending at once: no line lost or torn, and the hash chain holds."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(tmp_path, tag, 25)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    log = AuditLog(tmp_path)
    ids = [r.run_id for r in log.records()]
    assert sorted(ids) == sorted([f"a-{i}" for i in range(25)] + [f"b-{i}" for i in range(25)])
    assert not log.chain_breaks()
    assert [r.run_id for r in log.records(model="m")] == ids and log.records(model="other") == []
