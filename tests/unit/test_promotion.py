"""Promotion, rollback, re-scoring from the registry, and the retrain change check (tiny model, no Prefect)."""

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import TOPICS, make_config, pipeline_run, write_csv
from tunegate import changes, promotion
from tunegate.audit import AuditLog
from tunegate.cli import main
from tunegate.config import load_config
from tunegate.errors import PromotionError, RegistryError
from tunegate.inference import load_predictor
from tunegate.registry import Registry
from tunegate.stages import source_files

GATE = {"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100}  # the gate passes: each run is promoted
LADDER = {"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False}


@pytest.fixture
def cfg(tmp_path, tiny_model_dir, toy_data):
    return load_config(make_config(tmp_path, tiny_model_dir, toy_data, gate=GATE, baselines=LADDER))


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model_dir):
    """Two promoted versions (v1, then v2 over it), built once; each test gets its own copy."""
    root = tmp_path_factory.mktemp("promotion")
    data = {
        "train": write_csv(root / "train.csv", [(t, lab) for lab, texts in TOPICS.items() for t in texts[:7]]),
        "eval": write_csv(root / "eval.csv", [(t, lab) for lab, texts in TOPICS.items() for t in texts[7:]]),
    }
    c = load_config(make_config(root, tiny_model_dir, data, gate=GATE, baselines=LADDER))
    _, _, d1 = pipeline_run(c)
    _, _, d2 = pipeline_run(c)
    assert (d1.production_moved, d2.production_moved) == (True, True)
    return root


@pytest.fixture
def promo(built, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(built, work)
    text = (work / "config.yaml").read_text().replace(str(built), str(work))
    (work / "config.yaml").write_text(text)
    c = load_config(work / "config.yaml")
    return c, Registry(c.registry.path)


def test_promotion_rescores_the_registry_copy_and_records_it(promo):
    cfg, reg = promo
    v2 = reg.get("toy", 2)
    assert {"artifact", "config.yaml", "eval.parquet", "expected.json", "meta.json", "model_card.md"} <= {
        p.name for p in v2.path.iterdir()
    }
    assert (
        not os.access(v2.path / "expected.json", os.W_OK) or os.geteuid() == 0
    )  # read-only files (root ignores modes)
    (move,) = [h for h in reg.history("toy") if h["to"] == 2]
    rs = move["rescore"]
    assert rs["reproduced"] and rs["value"] == pytest.approx(rs["expected"], abs=cfg.registry.reproduce_tolerance)
    assert rs["agreement"] == 1.0 and rs["n"] == 6 and move["action"] == "promote" and move["from"] == 1
    # the second run was compared with production v1 on the same rows before it replaced it
    d = json.loads((Path(cfg.output.dir) / reg.get("toy", 2).meta["run_id"] / "decision.json").read_text())
    assert d["production"] == "toy@v1" and any(c["opponent"] == "toy@v1" for c in d["comparisons"])


def test_rollback_unwinds_and_promote_goes_forward_again(promo):
    cfg, reg = promo
    r = promotion.rollback(reg, "toy", reason="bad answers reported")
    assert (r.previous, reg.resolve("toy@production").version) == (2, 1)
    with pytest.raises(RegistryError, match="no earlier version to roll back to"):
        promotion.rollback(reg, "toy")
    p = promotion.promote(reg, "toy", 2, tolerance=0.005)
    assert p.moved and p.rescore.reproduced and reg.resolve("toy").version == 2
    assert reg.rollback_target("toy") == 1
    # staging is an alias like any other, with its own history
    promotion.promote(reg, "toy", 1, alias="staging", tolerance=0.005)
    assert reg.resolve("toy@staging").version == 1 and reg.resolve("toy@production").version == 2
    assert [h["action"] for h in reg.history("toy", "production")] == ["promote", "promote", "rollback", "promote"]


def test_cli_promote_rollback_history_and_audit(promo, capsys):
    cfg, _ = promo
    root = str(cfg.registry.path)
    assert main(["registry", "rollback", "toy", "--reason", "incident 42", "--registry", root]) == 0
    assert "rolled toy@production back from v2 to v1" in capsys.readouterr().out
    assert main(["registry", "promote", "toy", "--registry", root]) == 1  # a version must be named
    assert "name the version" in capsys.readouterr().err
    assert main(["registry", "promote", "toy@2", "--reason", "fixed", "--registry", root]) == 0
    out = capsys.readouterr().out
    assert "re-scored from the registry: accuracy" in out and "moved toy@production from v1 to v2" in out
    assert main(["registry", "history", "toy", "--registry", root]) == 0
    out = capsys.readouterr().out
    assert "rollback" in out and "incident 42" in out and "re-score accuracy" in out
    recs = AuditLog(root).records()
    assert [r.status for r in recs[-2:]] == ["rollback", "promote"]
    assert recs[-2].deployed["from"] == 2 and recs[-2].deployed["to"] == 1 and "incident 42" in recs[-2].headline
    assert recs[-1].deployed["rescore"]["reproduced"] is True
    assert AuditLog(root).chain_breaks() == []
    assert main(["audit", "--registry", root]) == 0
    assert "rollback" in capsys.readouterr().out


def test_a_rejected_version_needs_force(promo, capsys):
    cfg, reg = promo
    meta_file = reg.get("toy", 1).path / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.chmod(0o644)
    meta_file.write_text(json.dumps({**meta, "decision": "reject"}))  # meta.json is outside the manifest
    assert main(["registry", "promote", "toy@1", "--registry", str(reg.root)]) == 1
    assert "was rejected by the gate" in capsys.readouterr().err and reg.resolve("toy").version == 2
    assert main(["registry", "promote", "toy@1", "--force", "--registry", str(reg.root)]) == 0
    assert reg.resolve("toy").version == 1


def test_changed_files_block_promotion_rollback_and_serving(promo):
    cfg, reg = promo
    weights = next(p for p in (reg.get("toy", 1).path / "artifact").rglob("*.safetensors"))
    weights.chmod(0o644)
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    assert any("changed since registration" in p for p in reg.verify("toy", 1))
    result = promotion.promote(reg, "toy", 1, tolerance=0.005)
    assert not result.moved and "files changed after registration" in result.message
    with pytest.raises(RegistryError, match="files changed"):
        promotion.rollback(reg, "toy")
    with pytest.raises(RegistryError, match="files changed"):
        load_predictor(reg.root, "toy@1")
    assert reg.resolve("toy@production").version == 2 and reg.verify("toy", 2) == []


def test_a_save_bug_is_caught_before_production_moves(promo, monkeypatch):
    """The registry copy differs from the judged model (labels swapped on save): not promoted, production stays."""
    cfg, reg = promo
    original = Registry.register

    def buggy_register(self, name, *, files, dirs, meta, exclude=()):
        art = Path(dirs["artifact"])
        bad = art.parent / "artifact-saved-wrong"
        shutil.copytree(art, bad)
        m = json.loads((bad / "tunegate.json").read_text())
        m["labels"] = {"pos": m["labels"]["neg"], "neg": m["labels"]["pos"]}  # answers swapped: every prediction flips
        (bad / "tunegate.json").write_text(json.dumps(m))
        return original(self, name, files=files, dirs={**dirs, "artifact": bad}, meta=meta, exclude=exclude)

    monkeypatch.setattr(Registry, "register", buggy_register)
    with pytest.raises(PromotionError, match="did NOT move 'production'.*re-scored from the registry"):
        pipeline_run(cfg)
    monkeypatch.undo()
    assert reg.versions("toy") == [1, 2, 3]
    assert reg.resolve("toy@production").version == 2
    assert all(h["to"] != 3 for h in reg.history("toy"))
    deployed = json.loads((Path(cfg.output.dir) / reg.get("toy", 3).meta["run_id"] / "deployment.json").read_text())
    assert deployed["production_moved"] is False and deployed["rescore"]["reproduced"] is False
    assert deployed["rescore"]["agreement"] < 0.5  # swapped answers flip the predictions (ties aside)


def test_production_moved_meanwhile_is_not_overwritten(promo):
    """Run B compared itself with v1 while run A promoted v2: B's alias move is refused (compare-and-set)."""
    _, reg = promo
    with pytest.raises(RegistryError, match="moved from v1 to v2 while this run was comparing against v1"):
        reg.set_alias("toy", "production", 1, expect=1)
    assert reg.resolve("toy").version == 2


def _move_many(root, versions):
    reg = Registry(root)
    for v in versions:
        reg.set_alias("m", "production", v)


def test_concurrent_alias_moves_lose_no_history(tmp_path):
    reg = Registry(tmp_path / "reg")
    for _ in range(3):
        reg.register("m", files={}, dirs={}, meta={})
    with mp.get_context("spawn").Pool(3) as pool:
        pool.starmap(_move_many, [(str(tmp_path / "reg"), [1, 2, 3] * 5)] * 3)
    assert len(reg.history("m")) == 45
    assert reg.aliases("m")["production"] in (1, 2, 3)
    assert not [p for p in (tmp_path / "reg" / "m").iterdir() if p.name.startswith(".aliases.json.")]


def test_change_check_and_source_fingerprint(tmp_path, cfg):
    reg = Registry(cfg.registry.path)
    first = changes.check(cfg.registry, data_hash="d1", config_hash="c1")
    assert first.changed and "no version" in first.reason
    reg.register("toy", files={}, dirs={}, meta={"data_hash": "d1", "config_hash": "c1", "run_id": "r1"})
    same = changes.check(cfg.registry, data_hash="d1", config_hash="c1")
    assert not same.changed and same.reason.startswith("no change") and same.last_version == 1
    assert changes.check(cfg.registry, data_hash="d1", config_hash="c1", force=True).changed
    assert "data changed" in changes.check(cfg.registry, data_hash="d2", config_hash="c1").reason
    assert "config changed" in changes.check(cfg.registry, data_hash="d1", config_hash="c2").reason
    fp = changes.source_fingerprint(source_files(cfg))
    assert fp == changes.source_fingerprint(source_files(cfg))
    train = cfg.resolve(cfg.data.train)
    train.write_text(train.read_text() + "another wonderful film,pos\n")
    assert changes.source_fingerprint(source_files(cfg)) != fp
    assert changes.last_seen(cfg.registry) is None
    changes.remember(cfg.registry, fp, "Completed")
    assert changes.last_seen(cfg.registry)["fingerprint"] == fp
