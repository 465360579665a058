"""Before training: what each method would cost here, whether it fits the budget, and which to use.

Estimates are measured, not looked up: each method runs a short calibration on this
machine (three optimizer steps on real training rows, the longest row included; the
first step is warm-up and not timed), and the measured tokens/s and memory are scaled
to the full training set from its token counts. ``advise`` applies the design's
decision guide to the task, the hardware, the priority and the estimates, and says
which rule fired and why each alternative lost.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import torch

from tunegate.answering import AnswerSpec
from tunegate.config import BudgetConfig, CostsConfig
from tunegate.errors import TunegateError
from tunegate.evaluation import training_set
from tunegate.footprint import MEMORY_HEADROOM, model_shape
from tunegate.hardware import cpu_model, usable_cores
from tunegate.hardware import current as current_placement
from tunegate.methods import (
    AdviceContext,
    MethodSettings,
    TrainedArtifact,
    TrainingSet,
    applicable_methods,
    get_method,
)
from tunegate.modeling import cache_root, load_tokenizer, parameter_count
from tunegate.progress import bar as progress_bar
from tunegate.provenance import code_version, package_versions, sha256_json
from tunegate.records import Advice, Hardware, MethodEstimate, MicroBatchSuggestion, PlanResult
from tunegate.training import TrainStats


class BudgetExceededError(TunegateError):
    """The plan's estimate exceeds a budget cap; raised before any training."""


def detect_hardware() -> Hardware:
    cores = usable_cores()
    vm = psutil.virtual_memory()
    gpu_name = gpu_mem = None
    if torch.cuda.is_available() and current_placement().device == "cuda":
        props = torch.cuda.get_device_properties(0)
        gpu_name, gpu_mem = props.name, props.total_memory / 2**30
    return Hardware(
        device="cuda" if gpu_name else "cpu",
        cpu_cores=cores,
        ram_total_gb=round(vm.total / 2**30, 2),
        ram_available_gb=round(vm.available / 2**30, 2),
        gpu_name=gpu_name,
        gpu_memory_gb=None if gpu_mem is None else round(gpu_mem, 2),
        torch_threads=torch.get_num_threads(),
    )


def _calibration_rows(data: TrainingSet, n: int, seed: int) -> list[int]:
    """``n`` random rows, always including the longest (the activation-memory peak)."""
    lengths = [len(p) + len(a) for p, a in data.examples]
    longest = max(range(len(lengths)), key=lengths.__getitem__)
    others = [i for i in range(len(lengths)) if i != longest]
    random.Random(seed).shuffle(others)
    return [longest, *others[: max(0, n - 1)]]


def _calibration_key(base_path: str, data: TrainingSet, rows: list[int], cal_cfg) -> str | None:
    """What a calibration measurement depends on: the rows and prompts (the training set's fingerprint names the
    base model too), the calibration settings, this machine and precision, the code and package versions. None
    (never cached) when the training set has no fingerprint."""
    if not data.fingerprint:
        return None
    placement = current_placement()
    return sha256_json(
        {
            "base": str(Path(base_path).resolve()),
            "data": data.fingerprint,
            "rows": rows,
            "settings": cal_cfg.model_dump(mode="json"),
            "placement": placement.model_dump(mode="json", exclude={"reason"}),
            "cpu": cpu_model(),
            "cores": usable_cores(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if placement.device == "cuda" else None,
            "code": code_version(),
            "packages": package_versions(),
        }
    )


def _calibration_file(key: str) -> Path:
    return cache_root() / "calibration" / f"{key}.json"


def _cached_calibration(key: str | None) -> TrainedArtifact | None:
    """A calibration measured earlier on this machine for the same rows, settings and code (a repeated or resumed
    run does not train the calibration steps again); None when there is none or it does not read."""
    if key is None or not _calibration_file(key).is_file():
        return None
    try:
        saved = json.loads(_calibration_file(key).read_text())
        return TrainedArtifact(
            artifact_dir=Path(),
            trainable_params=saved["trainable_params"],
            total_params=saved["total_params"],
            base_footprint_mb=saved["base_footprint_mb"],
            train_stats=TrainStats(**saved["train_stats"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store_calibration(key: str | None, art: TrainedArtifact) -> None:
    if key is None:
        return
    path = _calibration_file(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "trainable_params": art.trainable_params,
        "total_params": art.total_params,
        "base_footprint_mb": art.base_footprint_mb,
        "train_stats": dataclasses.asdict(art.train_stats),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(saved))
    os.replace(tmp, path)


def estimate(cfg_method, *, base_path: str, data: TrainingSet, price_per_hour: float) -> MethodEstimate:
    """Calibrate ``cfg_method`` on a few real rows here and scale to the full training set."""
    method = get_method(cfg_method.name)
    if not method.applies_to(data.task):
        return MethodEstimate(
            method=cfg_method.name,
            applicable=False,
            reason=f"does not apply to {data.task} tasks",
            config=cfg_method.model_dump(mode="json"),
        )
    n_rows, cal_cfg = method.calibration(data, cfg_method)
    rows = _calibration_rows(data, n_rows, cfg_method.seed)
    sub = data.subset(rows)
    sub.fingerprint = ""  # no feature caching: the calibration must measure the extraction
    key = _calibration_key(base_path, data, rows, cal_cfg)
    art = _cached_calibration(key)
    cached = art is not None
    try:
        if art is None:
            art = _calibrate(method, base_path, sub, cal_cfg)
            _store_calibration(key, art)
    except TunegateError as exc:  # e.g. bitsandbytes missing: not usable here
        return MethodEstimate(
            method=cfg_method.name, applicable=False, reason=str(exc), config=cfg_method.model_dump(mode="json")
        )
    except Exception as exc:  # noqa: BLE001 - a method that cannot train must not stop the others' estimates
        return MethodEstimate(
            method=cfg_method.name,
            applicable=True,
            error=f"{type(exc).__name__}: {exc}",
            config=cfg_method.model_dump(mode="json"),
        )
    st = art.train_stats
    full_tokens = method.full_train_tokens(data, cfg_method)
    tok_s, seconds = method.scale_to_full(st, full_tokens=full_tokens, n_rows=len(data), n_calibration=len(sub))
    peak = st.peak_rss_mb  # the calibration rows include the longest one: the activation peak is in it
    cost = seconds / 3600 * price_per_hour
    return MethodEstimate(
        method=cfg_method.name,
        applicable=True,
        trainable_params=art.trainable_params,
        total_params=art.total_params,
        full_train_tokens=full_tokens,
        calibration_rows=len(sub),
        calibration_tokens_per_s=round(tok_s, 1),
        calibration_cached=cached,
        est_train_seconds=round(seconds, 3),
        est_peak_mb=round(peak, 1),
        base_footprint_mb=None if art.base_footprint_mb is None else round(art.base_footprint_mb, 1),
        est_cost_usd=round(cost, 4),
        config=cfg_method.model_dump(mode="json"),
    )


def _calibrate(method, base_path: str, sub: TrainingSet, cal_cfg) -> TrainedArtifact:
    """The short calibration training on ``sub`` in a scratch folder (after a warm-up on 8 rows where the method
    asks for one, so one-off compilation is not timed)."""
    with tempfile.TemporaryDirectory(prefix="tunegate-calibrate-") as tmp:
        if method.warm_up_before_calibration:
            warm = sub.subset(list(range(min(8, len(sub)))))
            method.train(base_path=base_path, data=warm, cfg=cal_cfg, out_dir=Path(tmp) / "warmup", progress=False)
        return method.train(base_path=base_path, data=sub, cfg=cal_cfg, out_dir=Path(tmp) / "run", progress=False)


def over_budget(est: MethodEstimate, budget, hardware: Hardware | None = None) -> list[str]:
    """Every cap the estimate breaks, in words."""
    out = []
    if budget.max_train_minutes is not None and est.est_train_seconds / 60 > budget.max_train_minutes:
        out.append(f"time {est.est_train_seconds / 60:.3g} min > cap {budget.max_train_minutes:g} min")
    if budget.max_memory_gb is not None and est.est_peak_mb / 1024 > budget.max_memory_gb:
        out.append(f"memory {est.est_peak_mb / 1024:.2f} GB > cap {budget.max_memory_gb:g} GB")
    if budget.max_cost_usd is not None and est.est_cost_usd > budget.max_cost_usd:
        out.append(f"cost ${est.est_cost_usd:.4f} > cap ${budget.max_cost_usd:g}")
    if hardware is not None and est.est_peak_mb / 1024 > hardware.memory_gb:
        out.append(f"memory {est.est_peak_mb / 1024:.2f} GB > {hardware.memory_gb:.1f} GB available here")
    return out


MICRO_BATCH_MIN_SAVING = 0.2  # a larger micro-batch is suggested when an epoch computes at least 20% fewer tokens


def micro_batch_suggestion(
    cfg_method, est: MethodEstimate, *, shape, data: TrainingSet, limit_gb: float
) -> MicroBatchSuggestion | None:
    """The largest micro-batch (same update) with which an epoch computes at least ``MICRO_BATCH_MIN_SAVING`` fewer
    tokens (the rows' shared prefix once per micro-batch) and whose memory (the measured peak plus the config
    estimate's difference) stays within ``limit_gb``; None when there is none."""
    options = get_method(cfg_method.name).micro_batch_options(shape, cfg_method, current_placement(), data)
    if len(options) < 2:
        return None
    now = options[0]
    peaks = {o.micro_batch_size: est.est_peak_mb / 1024 + o.memory_gb - now.memory_gb for o in options[1:]}
    fits = [
        o
        for o in options[1:]
        if o.tokens_per_epoch <= (1 - MICRO_BATCH_MIN_SAVING) * now.tokens_per_epoch
        and peaks[o.micro_batch_size] <= limit_gb
    ]
    if not fits:
        return None
    best = fits[-1]
    ratio = now.tokens_per_epoch / best.tokens_per_epoch
    return MicroBatchSuggestion(
        micro_batch_size=best.micro_batch_size,
        configured=now.micro_batch_size,
        tokens_ratio=round(ratio, 3),
        est_train_seconds=round(est.est_train_seconds / ratio, 3),
        est_peak_gb=round(peaks[best.micro_batch_size], 3),
    )


def candidate_methods(settings: MethodSettings, task: str) -> list[Any]:
    """What plan estimates: the configured method, or every applicable method for ``auto``."""
    if settings.name != "auto":
        return [settings]
    shared = {"max_length": settings.max_length, "seed": settings.seed}
    return [cls(**shared) for cls in applicable_methods(task).values()]


def advise(
    settings: MethodSettings,
    budget: BudgetConfig,
    hardware: Hardware,
    estimates: list[MethodEstimate],
    base_params: int,
    *,
    task: str,
) -> Advice:
    """The decision guide, applied to measured estimates: every method's rules (``TuningMethod.advice``), tried by
    rank, and the first that applies to a method within the budget and the memory chooses it (the built-in guide:
    speed priority and a classification or scoring task -> a head on frozen features; the base in 16-bit plus
    adapters fits the device memory -> adapters; it does not -> adapters on a 4-bit base; only the smallest
    trainable part fits the budget -> a soft prompt, then the head).
    """
    by = {e.method: e for e in estimates if e.applicable and e.error is None}
    ctx = AdviceContext(
        task=task,
        priority=getattr(settings, "priority", "quality"),
        device=hardware.device,
        memory_gb=hardware.memory_gb,
        base_params=base_params,
        estimates=by,
    )
    inputs = {
        "task": task,
        "priority": ctx.priority,
        "device": hardware.device,
        "device_memory_gb": round(hardware.memory_gb, 2),
        "base_params": base_params,
        "base_16bit_gb": round(ctx.base16_gb, 3),
        "train_rows": None,
        "budget": budget.model_dump(mode="json"),
    }
    rules = sorted(((rule, name) for name in by for rule in get_method(name).advice(ctx)), key=lambda r: r[0].rank)
    chosen = why = None
    for rule, name in rules:
        if rule.applies and not by[name].over_budget:
            chosen, why = name, rule.why
            break
    if chosen is None:
        lines = [f"{m}: {', '.join(e.over_budget) or e.reason}" for m, e in by.items()]
        raise BudgetExceededError(
            "No method fits the budget:\n  - "
            + "\n  - ".join(lines)
            + "\nRaise a cap under `budget`, lower method.epochs / max_steps or max_train_rows, or use a smaller model."
        )
    alternatives = {
        m: "over budget: " + ", ".join(e.over_budget) if e.over_budget else get_method(m).why_not(ctx)
        for m, e in by.items()
        if m != chosen
    }
    for e in estimates:
        if not e.applicable:
            alternatives[e.method] = f"not applicable: {e.reason}"
        elif e.error:
            alternatives[e.method] = f"its calibration run failed: {e.error}"
    return Advice(chosen=chosen, rule=why, inputs=inputs, alternatives=alternatives)


def memory_check(cfg_method, *, base_path: str, data: TrainingSet, hardware: Hardware) -> MethodEstimate | None:
    """The method's training memory from the model's config alone; a ``MethodEstimate`` that rules it out when it
    cannot fit the device (so it is never loaded), else None (calibrate it)."""
    method = get_method(cfg_method.name)
    if not method.applies_to(data.task):
        return None
    mem = method.training_memory(model_shape(base_path), cfg_method, current_placement(), data)
    if mem is None or mem.total_gb <= hardware.memory_gb * MEMORY_HEADROOM:
        return None
    return MethodEstimate(
        method=cfg_method.name,
        applicable=True,
        calibrated=False,
        est_memory=mem,
        est_peak_mb=round(mem.total_gb * 1024, 1),
        base_footprint_mb=round(mem.weights_gb * 1024, 1),
        over_budget=[
            f"memory: needs {mem.describe()} > {MEMORY_HEADROOM:.0%} of the {hardware.memory_gb:.1f} GB on the "
            f"{hardware.device} (estimated from the model's config; not loaded)"
        ],
        config=cfg_method.model_dump(mode="json"),
    )


def plan(
    settings: MethodSettings,
    budget: BudgetConfig,
    costs: CostsConfig,
    *,
    base_path: str,
    data: TrainingSet,
    methods: list[Any] | None = None,
) -> PlanResult:
    """Estimate every candidate method (``methods``, else what ``settings`` asks for), choose (for ``auto``) and
    check the ``budget`` (``blocked`` says why not); training priced at ``costs``.

    Each method's memory is first estimated from the model's config; one that cannot fit the device is not
    calibrated (nothing is loaded for it), the others are calibrated on real rows here.
    """
    hardware = detect_hardware()
    estimates = []
    candidates = methods if methods is not None else candidate_methods(settings, data.task)
    with progress_bar(len(candidates), "plan: calibrate", "method") as bar:
        for m in candidates:
            bar.set_postfix_str(m.name, refresh=False)
            estimates.append(_estimate_within(m, budget, costs, hardware, base_path=base_path, data=data))
            bar.update()
    base_params = parameter_count(base_path)
    advice = None
    blocked = None
    if methods is not None:  # `tunegate compare`: every method is run, each checked against the budget itself
        chosen = None
    elif settings.name == "auto":
        try:
            advice = advise(settings, budget, hardware, estimates, base_params, task=data.task)
            advice.inputs["train_rows"] = len(data)
            chosen = next(e for e in estimates if e.method == advice.chosen)
        except BudgetExceededError as exc:
            blocked, chosen = str(exc), None
    else:
        chosen = estimates[0]
        blocked = _why_blocked(chosen)
    return PlanResult(
        hardware=hardware,
        estimates=estimates,
        chosen=None if chosen is None else chosen.method,
        chosen_config=None if chosen is None else chosen.config,
        advice=advice,
        blocked=blocked,
        base_params=base_params,
        n_train=len(data),
        price_per_hour=costs.train_per_hour(hardware.device),
    )


def _estimate_within(
    m: MethodSettings,
    budget: BudgetConfig,
    costs: CostsConfig,
    hardware: Hardware,
    *,
    base_path: str,
    data: TrainingSet,
) -> MethodEstimate:
    """One candidate's estimate: ruled out by its memory alone, or calibrated here and checked against the budget,
    with its memory breakdown and a suggested micro-batch within the device and ``budget.max_memory_gb``."""
    ruled_out = memory_check(m, base_path=base_path, data=data, hardware=hardware)
    if ruled_out is not None:
        return ruled_out
    est = estimate(m, base_path=base_path, data=data, price_per_hour=costs.train_per_hour(hardware.device))
    if est.applicable and est.error is None:
        memory_limit = hardware.memory_gb * MEMORY_HEADROOM  # for a suggested micro-batch
        if budget.max_memory_gb is not None:
            memory_limit = min(memory_limit, budget.max_memory_gb)
        shape = model_shape(base_path)
        est.est_memory = get_method(m.name).training_memory(shape, m, current_placement(), data)
        est.suggestion = micro_batch_suggestion(m, est, shape=shape, data=data, limit_gb=memory_limit)
        if getattr(m, "micro_batch_size", None) == "auto":
            _apply_auto_micro_batch(est, m, shape, data)
        est.over_budget = over_budget(est, budget, hardware)
    return est


def _apply_auto_micro_batch(est: MethodEstimate, m: MethodSettings, shape, data: TrainingSet) -> None:
    """``micro_batch_size: auto``: the suggested micro-batch (else the calibrated default) becomes the method's,
    its time, peak memory and cost the estimate's."""
    s = est.suggestion
    chosen = m.micro if s is None else s.micro_batch_size
    est.config["micro_batch_size"] = chosen
    est.auto_micro_batch = True
    if s is None:
        return
    est.est_cost_usd = round(est.est_cost_usd * s.est_train_seconds / max(est.est_train_seconds, 1e-9), 4)
    est.est_train_seconds = s.est_train_seconds
    est.est_peak_mb = round(s.est_peak_gb * 1024, 1)
    resolved = m.model_copy(update={"micro_batch_size": chosen})
    est.est_memory = get_method(m.name).training_memory(shape, resolved, current_placement(), data)


def _why_blocked(chosen: MethodEstimate) -> str | None:
    """Why the configured method must not train (a failed calibration, a budget it breaks), or None; a method that
    cannot run here at all is an error."""
    if not chosen.applicable:
        raise TunegateError(f"method '{chosen.method}' cannot run here: {chosen.reason}")
    if chosen.error:
        return f"method '{chosen.method}' failed its calibration run, so training would fail too: {chosen.error}"
    if chosen.over_budget:
        return (
            f"The estimate for method '{chosen.method}' exceeds the budget: {', '.join(chosen.over_budget)}.\n"
            "Stopped before training. Raise the cap under `budget`, lower method.epochs / max_steps or "
            "data.max_train_rows, or try `method: auto` (it picks the best method that fits)."
        )
    return None


def training_rows(spec: AnswerSpec, run, dataset, *, train_on: str) -> TrainingSet:
    """A run's validated train rows as token ids, with the prompts the run trains on (what :func:`plan` calibrates
    on)."""
    tokenizer = load_tokenizer(run.model_path)
    train = pl.read_parquet(dataset.train_path)
    return training_set(spec, tokenizer, train, model_sha=run.model_sha, data_hash=dataset.data_hash, train_on=train_on)
