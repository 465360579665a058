"""Fault injection at every write: a failure at each point where a run writes (an exception, and a SIGKILL of the
process) leaves no half-written version visible, production where it was, the audit log parseable with its chain
intact, and the next run succeeds.

Each case runs the pipeline's stages (as the flow runs them, plus the audit record) on the tiny model in a fresh
process, with one write point replaced by a function that raises or kills the process, against a registry that
already has a production version (v1). Then the invariants are checked and a clean run is made in the same
registry.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TOPICS, make_config, write_csv

pytestmark = pytest.mark.integration

# write point -> (object, attribute) replaced by a failing function, the caller it fails for ("module" or
# "module:function"; other callers get the original), and the config it needs
POINTS = {
    "checkpoint": ("tunegate.checkpoints", "_fsync", None, "plain"),  # state.pt written, manifest not yet
    "adapter_save": ("peft", "PeftModel.save_pretrained", None, "plain"),
    "index_cache": ("bm25s", "BM25.save", None, "retrieved"),
    "feature_cache": ("torch", "save", "tunegate.methods.linear_probe.method", "probe"),
    "report_write": ("tunegate.judging", "write_run_report", None, "plain"),
    "registry_copy": ("shutil", "copytree", "tunegate.registry", "plain"),
    "registry_manifest": ("tunegate.registry", "_manifest", None, "plain"),
    "registry_rename": ("tunegate.registry", "fsync_path", "tunegate.registry:register", "plain"),  # renamed, then
    "alias_move": ("tunegate.registry", "atomic_write_text", None, "plain"),
    # after deploy: the run's promotion (gate passed, registry copy re-scored) stands; its audit record failed
    "evidence_copy": ("shutil", "copyfile", "tunegate.audit", "plain"),
    "audit_append": ("os", "replace", "tunegate.audit:append", "plain"),  # the line in, the head not yet replaced
}


class Injected(OSError):
    """The failure put in at a write point."""


def inject(point: str, fault: str, setattr_=setattr):
    """Replace the write point's function by one that raises (``exception``) or SIGKILLs the process (``kill``)
    when called from the point's caller."""
    import importlib
    import os
    import sys

    module, attr, caller, _ = POINTS[point]
    owner = importlib.import_module(module)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    want_mod, _, want_fn = (caller or "").partition(":")

    def failing(*args, **kwargs):
        frame = sys._getframe(1)
        if caller and (frame.f_globals.get("__name__") != want_mod or (want_fn and frame.f_code.co_name != want_fn)):
            return original(*args, **kwargs)
        if fault == "kill":
            os.kill(os.getpid(), 9)
        raise Injected(f"injected failure at {point}")

    setattr_(owner, name, failing)


def full_run(cfg):
    """The flow's stages without Prefect, the audit record included."""
    from tests.conftest import pipeline_run
    from tunegate import stages
    from tunegate.records import RunOutcome

    run, decision, deployed = pipeline_run(cfg)
    stages.record_audit(cfg, run, RunOutcome(status="completed", decision=decision, deployment=deployed))
    return deployed


ZYGOTE = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
# everything a run imports, imported once; no thread pool has started yet, so forking is safe
import peft, torch, transformers, bm25s  # noqa: F401
import tunegate.methods, tunegate.stages, tunegate.evaluation  # noqa: F401
from tests.integration.test_fault_injection import full_run, inject
from tunegate.config import load_config

for line in sys.stdin:
    point, fault, cfg, cache = line.split()
    pid = os.fork()
    if pid == 0:  # the case's process: inject, run, and (if the point was never reached) say so
        os.environ["TUNEGATE_CACHE"] = cache
        inject(point, fault)
        full_run(load_config(cfg))
        os._exit(4)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


@pytest.fixture(scope="module")
def zygote(prefect_env):
    """One process with the run's imports done, forking a fresh process per SIGKILL case (a case then costs its
    run, not the seconds of importing torch, transformers and peft)."""
    from tests.integration.conftest import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-c", ZYGOTE, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**prefect_env, "TOKENIZERS_PARALLELISM": "false"},
    )
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, tiny_model_dir, prefect_env):
    """A registry with v1 in production (a clean run, audited), and the configs of the cases."""
    from tunegate.config import load_config

    root = tmp_path_factory.mktemp("faults")
    data = {
        "train": write_csv(root / "train.csv", [(t, lab) for lab, texts in TOPICS.items() for t in texts[:7]]),
        "eval": write_csv(root / "eval.csv", [(t, lab) for lab, texts in TOPICS.items() for t in texts[7:]]),
    }
    common = dict(
        gate={"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100},
        baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
    )
    configs = {}
    for key, extra in {"plain": {}, "retrieved": {"retrieved": True}, "probe": {"probe": True}}.items():
        folder = root / key
        folder.mkdir()
        sections = dict(common)
        if extra.get("retrieved"):
            sections["baselines"] = {**common["baselines"], "retrieved_few_shot": {"enabled": True, "k": 2}}
        if extra.get("probe"):
            sections["method"] = {"name": "linear_probe", "max_length": 64}
        configs[key] = make_config(folder, tiny_model_dir, data, **sections)
    seed = load_config(configs["plain"])
    assert full_run(seed).production_moved  # v1 in production, audited
    return root, configs, Path(seed.registry.path)


AFTER_DEPLOY = ("evidence_copy", "audit_append")  # production may have moved, legitimately, before the fault


def _invariants(registry: Path, point: str | None = None) -> list[str]:
    from tunegate.audit import AuditLog
    from tunegate.registry import Registry

    problems = []
    reg = Registry(registry)
    for v in reg.versions("toy"):
        if reg.verify("toy", v):
            problems.append(f"v{v} is visible but not whole: {reg.verify('toy', v)}")
    prod = reg.aliases("toy").get("production")
    if prod != 1 and not (point in AFTER_DEPLOY and reg.get("toy", prod).meta.get("decision") == "promote"):
        problems.append(f"production moved to v{prod}")
    log = AuditLog(registry)
    try:
        log.records()
    except Exception as exc:  # noqa: BLE001 - an unparseable log is the failure we look for
        problems.append(f"audit log unparseable: {exc}")
    problems += [f"audit chain: {b}" for b in log.chain_breaks()]
    return problems


CASES = [(p, f) for p in POINTS for f in ("exception", "kill")]


@pytest.mark.parametrize("point,fault", CASES, ids=[f"{p}-{f}" for p, f in CASES])
def test_a_failure_at_a_write_point_loses_nothing(seeded, zygote, point, fault, tmp_path, monkeypatch):
    from tunegate.config import load_config
    from tunegate.registry import Registry

    root, configs, registry = seeded
    src = configs[POINTS[point][3]]
    work = tmp_path / "w"  # each case on its own copy of the seeded registry, with a config pointing at it
    shutil.copytree(registry, work / "registry")
    cfg_path = work / "config.yaml"
    cfg_path.write_text(
        src.read_text()
        .replace(str(src.parent / "registry"), str(work / "registry"))
        .replace(str(src.parent / "runs"), str(work / "runs"))
    )
    monkeypatch.setenv("TUNEGATE_CACHE", str(tmp_path / "cache"))  # an empty cache: indexes and features built here
    if fault == "kill":
        zygote.stdin.write(f"{point} {fault} {cfg_path} {tmp_path / 'cache'}\n")
        zygote.stdin.flush()
        code = int(zygote.stdout.readline())
        assert code == -signal.SIGKILL, f"the case process ended with {code}, not SIGKILL at {point}"
    else:
        with monkeypatch.context() as m:
            inject(point, fault, setattr_=m.setattr)
            with pytest.raises(Injected):
                full_run(load_config(cfg_path))
    assert _invariants(work / "registry", point) == []
    # the next run, with nothing injected, succeeds: a whole new version, the log still parseable and chained
    deployed = full_run(load_config(cfg_path))
    reg = Registry(work / "registry")
    new = deployed.registered_version
    assert new == max(reg.versions("toy")) and reg.verify("toy", new) == []
    from tunegate.audit import AuditLog

    log = AuditLog(work / "registry")
    assert log.chain_breaks() == [] and log.records()[-1].status == "completed"
