"""Moving an alias to a registered version, safely.

Before ``production`` (or any alias) moves to a version, that version is loaded back
*from the registry* (its files checked against their sha256 manifest, its base model
resolved from the recorded spec, its adapter/head from the registry copy, its prompt,
labels and length budget from what it recorded) and scored again on the eval rows it
was judged on (stored with the version). If the metric does not reproduce the run's
within ``registry.reproduce_tolerance``, or fewer than ``registry.reproduce_agreement`` of
the rows get the prediction they got in the run, the alias does not move. This catches save,
copy and merge bugs, and a version whose files changed after registration.

Rollback moves an alias back to the version it pointed at before (no re-score: that
version was checked when it was promoted; its files are still checked).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from tunegate import evaluation, hardware, tracking
from tunegate.answering import AnswerSpec
from tunegate.audit import AuditLog
from tunegate.config import PromptConfig, RegistryConfig, parse_config
from tunegate.data import canonical_columns
from tunegate.errors import RegistryError
from tunegate.inference import load_version
from tunegate.ladder.base import Augment
from tunegate.methods import CHECKPOINTS, TuningMethod
from tunegate.records import (
    AuditRecord,
    DatasetRef,
    Decision,
    DeployResult,
    EvalResult,
    ProductionCheck,
    Rescore,
    RunContext,
    TuneResult,
)
from tunegate.registry import PRODUCTION, UNSET, Registry, VersionInfo, current_user

log = logging.getLogger(__name__)

EXPECTED = "expected.json"  # what the run measured: metric, value, per-row predictions, regression fallback
EVAL_ROWS = "eval.parquet"  # the eval rows the version was judged on
CONFIG = "config.yaml"  # the run's resolved config


def version_files(
    run: RunContext, *, metric: str, values: dict[str, Any], predictions: str, fallback: float | None
) -> dict[str, str | Path]:
    """What a version stores beside its artifact so it can be re-scored from the registry alone: the run's
    ``metric`` and ``values`` (every metric), its per-row predictions (``predictions/<predictions>.jsonl`` of the
    run), the eval rows, the config and the precision the run scored in."""
    run_dir = Path(run.run_dir)
    path = run_dir / "predictions" / f"{predictions}.jsonl"
    preds = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                p = json.loads(line)
                preds[str(p["row"])] = p["prediction"]
    expected = {
        "metric": metric,
        "value": values.get(metric),
        "metrics": values,
        "fallback": fallback,
        "predictions": preds,
        "dtype": run.placement.dtype,  # the precision the run scored in: a re-score reproduces it
    }
    return {
        EXPECTED: json.dumps(expected, indent=1),
        CONFIG: (run_dir / "config.yaml").read_text(),
        EVAL_ROWS: run_dir / "data" / "eval.parquet",
    }


def score_version(
    info: VersionInfo,
    spec: AnswerSpec,
    eval_df: pl.DataFrame,
    *,
    config_dir: Path,
    name: str,
    kind: str,
    fallback: float | None = None,
    loaded=None,
) -> EvalResult:
    """A registered version answering ``eval_df`` with its own base model, prompt and length budget (``spec``: how
    this run answers; ``config_dir``: where a relative base-model path is resolved); ``loaded``: the version as
    something else loaded it (an export), else from the registry."""
    loaded = loaded or load_version(info, config_dir=config_dir)
    meta = loaded.meta
    # prompt, label answers, length budget and label offset as the version recorded them: what serving it would use
    spec = dataclasses.replace(
        spec,
        prompt=PromptConfig(**meta["prompt"]),
        labels=dict(meta["labels"]) if meta.get("labels") else spec.labels,
        max_length=meta.get("max_length", spec.max_length),
        label_offset=tuple(meta.get("label_offset") or ()),
    )
    texts = eval_df.get_column(canonical_columns(spec.task)[0]).to_list()
    augment = Augment(shots=loaded.shots(texts))  # a prompt version's demonstrations; None for the others
    return evaluation.evaluate(
        loaded.answerer,
        loaded.tokenizer,
        spec=spec,
        eval_df=eval_df,
        name=name,
        kind=kind,
        fallback=fallback,
        augment=augment,
    )


def _reproducing(dtype: str):
    """This machine's placement in the precision the run scored in (a re-score checks the artifact, not the
    precision: bf16 runs everywhere, only slower on CPUs without bf16 hardware; float16 needs a GPU)."""
    here = hardware.current()
    if dtype == here.dtype or (dtype == "float16" and here.device == "cpu"):
        return here
    return here.model_copy(update={"dtype": dtype, "reason": f"{dtype}, as the run that registered it"})


def rescore(
    reg: Registry, name: str, version: int, *, tolerance: float | None = None, load=None, what: str = "the registry"
) -> Rescore:
    """Load ``name`` v``version`` back from the registry (or with ``load(config_dir)``: an export, ``what``) and score
    it on its stored eval rows; ``tolerance`` None: the ``registry.reproduce_tolerance`` its own run declared."""
    info = reg.get(name, version)
    ref = f"{name}@v{version}"
    missing = [f for f in (EXPECTED, EVAL_ROWS, CONFIG) if not (info.path / f).is_file()]
    if missing:
        return Rescore(
            version=ref,
            metric="?",
            tolerance=tolerance or 0.0,
            reproduced=False,
            note=f"{ref} has no {', '.join(missing)} (registered before re-scoring existed); promote it with "
            "--no-rescore",
        )
    expected = json.loads((info.path / EXPECTED).read_text())
    metric = expected["metric"]
    cfg = parse_config(yaml.safe_load((info.path / CONFIG).read_text()), config_dir=info.path)
    if tolerance is None:
        tolerance = cfg.registry.reproduce_tolerance
    problems = reg.verify(name, version)
    if problems:
        return Rescore(
            version=ref,
            metric=metric,
            expected=expected["value"],
            tolerance=tolerance,
            reproduced=False,
            note=f"{ref}'s files changed after registration: {'; '.join(problems[:5])}",
        )
    t0 = time.perf_counter()
    eval_df = pl.read_parquet(info.path / EVAL_ROWS)
    with hardware.using(_reproducing(expected.get("dtype", "float32"))):
        result = score_version(
            info,
            AnswerSpec.from_config(cfg),
            eval_df,
            config_dir=cfg.config_dir,
            name=ref,
            kind="tuned",
            fallback=expected.get("fallback"),
            loaded=load(cfg.config_dir) if load is not None else None,
        )
    ok, agreement, note = _reproduced(result, expected, tolerance, cfg.registry.reproduce_agreement, what)
    return Rescore(
        version=ref,
        metric=metric,
        expected=expected["value"],
        value=result.metrics[metric],
        tolerance=tolerance,
        reproduced=ok,
        n=result.n,
        agreement=agreement,
        seconds=round(time.perf_counter() - t0, 2),
        note=note,
    )


def _reproduced(
    result: EvalResult, expected: dict, tolerance: float, need_agreement: float, what: str = "the registry"
) -> tuple[bool, float | None, str]:
    """Does a re-score reproduce the run: its metric within ``tolerance`` of the run's and (where the run's
    predictions were kept) at least ``need_agreement`` of the rows predicted the same? And that in words."""
    metric = expected["metric"]
    value = result.metrics[metric]
    stored = expected.get("predictions") or {}
    same = [str(p.prediction) == str(stored[str(p.row)]) for p in result.predictions if str(p.row) in stored]
    agreement = sum(same) / len(same) if same else None
    metric_ok = expected["value"] is not None and abs(value - expected["value"]) <= tolerance
    agrees = agreement is None or agreement >= need_agreement
    note = (
        f"re-scored from {what}: {metric} {value:.4f} vs {expected['value']:.4f} in the run "
        f"(|difference| {abs(value - expected['value']):.4f} {'<=' if metric_ok else '>'} tolerance {tolerance})"
    )
    if agreement is not None:
        note += (
            f"; {agreement:.1%} of {len(same)} rows predicted the same "
            f"({'>=' if agrees else '<'} {need_agreement:.0%} required)"
        )
    return metric_ok and agrees, agreement, note


@dataclass
class Promotion:
    """The outcome of a promotion: the re-score, whether the alias moved, and why not."""

    moved: bool
    previous: int | None
    rescore: Rescore | None
    message: str


def promote(
    reg: Registry,
    name: str,
    version: int,
    *,
    alias: str = PRODUCTION,
    tolerance: float | None = None,
    check: bool = True,
    expect: Any = UNSET,
    reason: str = "",
    action: str = "promote",
) -> Promotion:
    """Re-score ``version`` from the registry, then move ``alias`` to it only if the metric reproduced.

    ``expect`` makes the move a compare-and-set (see ``Registry.set_alias``).
    """
    if version not in reg.versions(name):
        raise RegistryError(f"{name} has no version {version}; versions: {reg.versions(name) or 'none'}")
    result = None
    if check:
        result = rescore(reg, name, version, tolerance=tolerance)
        log.info("%s", result.note)
        if not result.reproduced:
            current = reg.aliases(name).get(alias)
            stays = f"stays at v{current}" if current is not None else "stays unset"
            return Promotion(
                False, current, result, f"{name}@{alias} not moved to v{version}: {result.note}; '{alias}' {stays}"
            )
    else:
        reg.require_intact(name, version, doing="promoting")
    details = {"rescore": result.model_dump(mode="json")} if result is not None else {"rescore": "skipped"}
    previous = reg.set_alias(name, alias, version, expect=expect, action=action, reason=reason, details=details)
    tracking.aliases_moved(reg.root, name)  # the registries it is mirrored to (tracking.mlflow) follow
    was = f"v{previous}" if previous is not None else "unset"
    return Promotion(True, previous, result, f"moved {name}@{alias} from {was} to v{version}")


def rollback(
    reg: Registry, name: str, *, alias: str = PRODUCTION, to: int | None = None, reason: str = ""
) -> Promotion:
    """Move ``alias`` back to the version it pointed at before (or to ``to``); files are checked, not re-scored."""
    target = to if to is not None else reg.rollback_target(name, alias)
    reg.require_intact(name, target, doing="rolling back to")
    previous = reg.set_alias(name, alias, target, action="rollback", reason=reason)
    tracking.aliases_moved(reg.root, name)
    return Promotion(True, previous, None, f"rolled {name}@{alias} back from v{previous} to v{target}")


def audit_alias_move(
    reg: Registry,
    name: str,
    result: Promotion,
    *,
    action: str,
    alias: str,
    reason: str = "",
    trigger: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """A by-hand alias move (``tunegate registry promote|rollback``) is one line in the audit log too, as is an
    automatic one (``trigger``: e.g. serve's ``rollback_if``, with its evidence in ``details``)."""
    target = reg.aliases(name).get(alias)
    rec = AuditRecord(
        run_id=f"{time.strftime('%Y%m%d-%H%M%S')}-{action}-{uuid.uuid4().hex[:4]}",
        time="",
        model_name=name,
        status=action,
        headline=result.message + (f" (reason: {reason})" if reason else ""),
        trigger=trigger or f"manual ({current_user()})",
        deployed={
            **(details or {}),
            "alias": alias,
            "from": result.previous,
            "to": target,
            "production_moved": alias == PRODUCTION,
            "production_version": reg.aliases(name).get(PRODUCTION),
            "rescore": result.rescore.model_dump(mode="json") if result.rescore else None,
        },
    )
    AuditLog(reg.root).append(rec)


def production_check(
    registry: RegistryConfig, spec: AnswerSpec, dataset: DatasetRef, *, must_beat_production: bool, config_dir: Path
) -> ProductionCheck:
    """The current production model of ``registry.model_name`` on this run's eval rows (gate.must_beat_production),
    answered with its own base model, prompt and length budget as recorded in its artifact; or why it is not."""
    name = registry.model_name
    if not must_beat_production:
        return ProductionCheck(note="gate.must_beat_production is off")
    reg = Registry(registry.path)
    version = reg.aliases(name).get(PRODUCTION) if name in reg.models() else None
    if version is None:
        return ProductionCheck(note=f"no production model of '{name}' yet: the best baseline is the only bar")
    info = reg.get(name, version)
    meta = TuningMethod.read_meta(info.path / "artifact")
    ref = f"{name}@v{version}"
    if meta.get("task") != spec.task or (meta.get("labels") or {}) != spec.labels:
        return ProductionCheck(
            version=ref, number=version, note=f"production {ref} answers another task or label set; not compared"
        )
    eval_df = pl.read_parquet(dataset.eval_path)
    result = score_version(
        info, spec, eval_df, config_dir=config_dir, name=ref, kind="production", fallback=dataset.train_mean
    )
    return ProductionCheck(
        version=ref,
        number=version,
        evaluation=result,
        note=f"production {ref} ({meta['method']}) scored on the same rows",
    )


def register_run(
    registry: RegistryConfig,
    run: RunContext,
    decision: Decision,
    tuned: TuneResult,
    production: ProductionCheck | None = None,
    *,
    card: str,
    expect_production: bool,
    train_mean: float | None = None,
) -> DeployResult:
    """Register the tuned artifact as a new immutable version (whatever the gate said: a rejected candidate is
    kept for the audit), with its model ``card``; move ``production`` only if promoted, the registry copy
    re-scores to the run's metric, and (``expect_production``: gate.must_beat_production) production is still the
    version this run was compared with."""
    reg = Registry(registry.path)
    name = registry.model_name
    stored = version_files(
        run,
        metric=decision.gate_metric,
        values=decision.tuned,
        predictions=f"tuned_{tuned.method}",
        fallback=train_mean,
    )
    info = reg.register(
        name,
        files={"model_card.md": card, "decision.json": decision.model_dump_json(indent=2), **stored},
        dirs={"artifact": Path(tuned.artifact_dir)},
        exclude=(CHECKPOINTS,),  # training state for resuming: the run's, not the version's
        meta=version_meta(run, decision, tuned),
    )
    rescored, moved = None, False
    if decision.decision == "promote":
        # compare-and-set: production must still be what production_check scored (or still unset)
        expect = production.number if production is not None and expect_production else UNSET
        reason = f"run {run.run_id}: {decision.summary}"
        rescored, moved, message = _promote_new(reg, name, info.version, registry, expect=expect, reason=reason)
    else:
        current = reg.aliases(name).get(PRODUCTION)
        where = f"stays at v{current}" if current else "is not set"
        message = f"registered {name} v{info.version} as a rejected candidate; '{PRODUCTION}' {where}"
    return DeployResult(
        registered_version=info.version,
        version_dir=str(info.path),
        production_moved=moved,
        production_version=reg.aliases(name).get(PRODUCTION),
        message=message,
        rescore=rescored,
    )


def register_prompt(
    registry: RegistryConfig,
    run: RunContext,
    decision: Decision,
    best: EvalResult,
    spec: AnswerSpec,
    train: pl.DataFrame,
    *,
    train_mean: float | None = None,
) -> tuple[int, bool, str]:
    """Register the best rung, a searched prompt (``prompt_versions.registrable``), as a prompt version and move the
    ``prompt`` alias to it once it re-scores from the registry: (version, moved, what happened in words)."""
    from tunegate import prompt_versions

    reg = Registry(registry.path)
    name = registry.model_name
    artifact = prompt_versions.write_artifact(
        Path(run.run_dir) / "prompts" / "artifact", run=run, result=best, spec=spec, train=train
    )
    stored = version_files(
        run, metric=decision.gate_metric, values=best.metrics, predictions=best.name, fallback=train_mean
    )
    card = prompt_versions.model_card(name, run, decision, best, TuningMethod.read_meta(artifact))
    info = reg.register(
        name,
        files={"model_card.md": card, "decision.json": decision.model_dump_json(indent=2), **stored},
        dirs={"artifact": artifact},
        meta=prompt_versions.version_meta(run, decision, best),
    )
    alias = prompt_versions.ALIAS
    result = promote(
        reg, name, info.version, alias=alias, tolerance=registry.reproduce_tolerance, reason=f"run {run.run_id}"
    )
    what = f"registered the best rung {best.name} as prompt version {name} v{info.version}"
    if result.moved:
        serve = f"`tunegate serve --model {name}@{alias}`"
        return info.version, True, f"{what}, '{alias}' moved to it ({result.rescore.note}); answer with it: {serve}"
    return info.version, False, f"{what} but did NOT move '{alias}': {result.message}"


def version_meta(run: RunContext, decision: Decision, tuned: TuneResult) -> dict[str, Any]:
    """What the registry lists for a version: its run, method, the gate's verdict and claim, data and config."""
    return {
        "run_id": run.run_id,
        "method": tuned.method,
        "decision": decision.decision,
        "gate_metric": decision.gate_metric,
        "metric": decision.tuned[decision.gate_metric],
        "delta": decision.delta,
        "ci_low": decision.ci_low,
        "ci_high": decision.ci_high,
        "data_hash": decision.provenance["data_hash"],
        "config_hash": run.config_hash,
        "base_model": run.model_spec,
    }


def _promote_new(
    reg: Registry, name: str, version: int, registry: RegistryConfig, *, expect: Any, reason: str
) -> tuple[Rescore | None, bool, str]:
    """Move production to a just-registered version (re-scored first): the re-score, whether it moved, and what
    happened in words (a production moved meanwhile by another run is said, not raised)."""
    try:
        result = promote(reg, name, version, tolerance=registry.reproduce_tolerance, expect=expect, reason=reason)
    except RegistryError as exc:  # production moved while this run was comparing: not promoted, say so
        return None, False, f"registered {name} v{version} but did NOT move '{PRODUCTION}': {exc}"
    message = (
        f"registered {name} v{version} and moved '{PRODUCTION}' to it ({result.rescore.note})"
        if result.moved
        else f"registered {name} v{version} but did NOT move '{PRODUCTION}': {result.message}"
    )
    return result.rescore, result.moved, message
