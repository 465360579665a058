"""Before training: what each method would cost here, whether it fits the budget, and which to use.

Estimates are measured, not looked up: each method runs a short calibration on this
machine (three optimizer steps on real training rows, the longest row included; the
first step is warm-up and not timed), and the measured tokens/s and memory are scaled
to the full training set from its token counts. ``advise`` applies the design's
decision guide to the task, the hardware, the priority and the estimates, and says
which rule fired and why each alternative lost.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import psutil
import torch

from tunegate.config import TunegateConfig, applicable_methods
from tunegate.errors import TunegateError
from tunegate.methods import get_method
from tunegate.methods.base import TrainingSet
from tunegate.modeling import parameter_count
from tunegate.records import Advice, Hardware, MethodEstimate, PlanResult

CALIBRATION_STEPS = 3  # the first is warm-up (lazy init, allocator growth) and is not timed


class BudgetExceededError(TunegateError):
    """The plan's estimate exceeds a budget cap; raised before any training."""


def detect_hardware() -> Hardware:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    vm = psutil.virtual_memory()
    gpu_name = gpu_mem = None
    if torch.cuda.is_available():
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


def _full_tokens(data: TrainingSet, cfg) -> int:
    """Tokens the full training run processes (prompt + answer, all epochs, up to max_steps)."""
    per_epoch = sum(len(p) + len(a) for p, a in data.examples)
    if cfg.name == "linear_probe":
        return sum(len(p) for p in data.prompt_ids)  # one forward pass per prompt, features cached
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    return round(per_epoch * total_steps / steps_per_epoch)


def estimate(cfg_method, *, base_path: str, data: TrainingSet, price_per_hour: float) -> MethodEstimate:
    """Calibrate ``cfg_method`` on a few real rows here and scale to the full training set."""
    method = get_method(cfg_method.name)
    if data.task not in method.tasks():
        return MethodEstimate(method=cfg_method.name, applicable=False, reason=f"does not apply to {data.task} tasks",
                              config=cfg_method.model_dump(mode="json"))
    if cfg_method.name == "linear_probe":
        rows = _calibration_rows(data, min(len(data), 64), cfg_method.seed)
        cal_cfg = cfg_method
    else:
        rows = _calibration_rows(data, min(len(data), CALIBRATION_STEPS * cfg_method.batch_size), cfg_method.seed)
        cal_cfg = cfg_method.model_copy(update={"max_steps": CALIBRATION_STEPS, "epochs": 1, "warmup_ratio": 0.0})
    sub = data.subset(rows)
    sub.fingerprint = ""  # no feature caching: the calibration must measure the extraction
    with tempfile.TemporaryDirectory(prefix="tunegate-calibrate-") as tmp:
        try:
            if cfg_method.name == "linear_probe":  # untimed warm-up (the loop methods skip their first step instead)
                method.train(base_path=base_path, data=sub.subset(list(range(min(8, len(sub))))), cfg=cal_cfg,
                             out_dir=Path(tmp) / "warmup", progress=False)
            art = method.train(base_path=base_path, data=sub, cfg=cal_cfg, out_dir=Path(tmp) / "run", progress=False)
        except TunegateError as exc:  # e.g. bitsandbytes missing: not usable here
            return MethodEstimate(method=cfg_method.name, applicable=False, reason=str(exc), config=cfg_method.model_dump(mode="json"))
        except Exception as exc:  # noqa: BLE001 - a method that cannot train must not stop the others' estimates
            return MethodEstimate(method=cfg_method.name, applicable=True, error=f"{type(exc).__name__}: {exc}",
                                  config=cfg_method.model_dump(mode="json"))
    st = art.train_stats
    full_tokens = _full_tokens(data, cfg_method)
    if cfg_method.name == "linear_probe":
        feat_s = st.extra["feature_seconds"]
        head_s = max(0.0, st.seconds - feat_s)
        tok_s = st.tokens / feat_s if feat_s else float("inf")
        seconds = full_tokens / tok_s + head_s * len(data) / len(sub)
    else:
        timed_s = sum(st.step_seconds[1:]) or sum(st.step_seconds)
        timed_tok = sum(st.step_tokens[1:]) or sum(st.step_tokens)
        tok_s = timed_tok / timed_s if timed_s else float("inf")
        seconds = full_tokens / tok_s
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
        est_train_seconds=round(seconds, 3),
        est_peak_mb=round(peak, 1),
        base_footprint_mb=None if art.base_footprint_mb is None else round(art.base_footprint_mb, 1),
        est_cost_usd=round(cost, 4),
        config=cfg_method.model_dump(mode="json"),
    )


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


def candidate_methods(cfg: TunegateConfig) -> list[Any]:
    """What plan estimates: the configured method, or every applicable method for ``auto``."""
    if cfg.method.name != "auto":
        return [cfg.method]
    shared = {"max_length": cfg.method.max_length, "seed": cfg.method.seed}
    return [cls(**shared) for cls in applicable_methods(cfg.task).values()]


def advise(cfg: TunegateConfig, hardware: Hardware, estimates: list[MethodEstimate], base_params: int) -> Advice:
    """The design's decision guide, applied to measured estimates.

    1. speed priority and a classification or scoring (regression) task -> linear probe;
    2. the base in 16-bit plus adapters fits the device memory -> LoRA;
    3. it does not (model too large) -> QLoRA (4-bit base);
    4. only the smallest trainable part fits the budget (very constrained compute) -> prompt tuning;
    and within each rule only methods whose estimates fit the budget and the memory.
    """
    by = {e.method: e for e in estimates if e.applicable and e.error is None}
    fits = {m: not e.over_budget for m, e in by.items()}
    base16_gb = base_params * 2 / 2**30
    inputs = {
        "task": cfg.task,
        "priority": getattr(cfg.method, "priority", "quality"),
        "device": hardware.device,
        "device_memory_gb": round(hardware.memory_gb, 2),
        "base_params": base_params,
        "base_16bit_gb": round(base16_gb, 3),
        "train_rows": None,
        "budget": cfg.budget.model_dump(mode="json"),
    }
    lora = by.get("lora")
    # adapters + optimizer state + activations, as measured on top of the base by the calibration
    lora_extra_gb = 0.0 if lora is None else max(0.0, lora.est_peak_mb - (lora.base_footprint_mb or 0)) / 1024
    base16_fits = base16_gb + lora_extra_gb <= hardware.memory_gb * 0.9
    rules = [
        ("linear_probe", inputs["priority"] == "speed" and cfg.task in ("classification", "regression"),
         f"speed matters (priority: speed) and the task is {cfg.task} (labels or scores): a linear head on frozen "
         "features trains in seconds and adds nothing to inference"),
        ("lora", base16_fits,
         f"the base in 16-bit ({base16_gb:.2f} GB) plus adapters, optimizer state and activations "
         f"({lora_extra_gb:.2f} GB measured) fits the {hardware.device} memory ({hardware.memory_gb:.1f} GB): "
         "LoRA is the general-purpose choice"),
        ("qlora", not base16_fits,
         f"the base in 16-bit ({base16_gb:.2f} GB) plus training state does not fit the {hardware.device} memory "
         f"({hardware.memory_gb:.1f} GB): QLoRA keeps the base in 4 bits"),
        ("prompt_tuning", True,
         "compute is very constrained: the larger methods exceed the budget, a soft prompt of a few virtual tokens fits"),
        ("linear_probe", cfg.task in ("classification", "regression"),
         "compute is very constrained: only a linear head on frozen features fits the budget"),
    ]
    chosen = rule = None
    for name, applies, why in rules:
        if applies and name in by and fits[name]:
            chosen, rule = name, why
            break
    if chosen is None:
        lines = [f"{m}: {', '.join(e.over_budget) or e.reason}" for m, e in by.items()]
        raise BudgetExceededError(
            "No method fits the budget:\n  - " + "\n  - ".join(lines)
            + "\nRaise a cap under `budget`, lower method.epochs / max_steps or max_train_rows, or use a smaller model."
        )
    alternatives = {}
    for m, e in by.items():
        if m == chosen:
            continue
        if e.over_budget:
            alternatives[m] = "over budget: " + ", ".join(e.over_budget)
        elif m == "linear_probe":
            alternatives[m] = "priority is quality: a head on frozen features cannot adapt the model's representations"
        elif m == "qlora":
            alternatives[m] = "the 16-bit base fits, so 4-bit quantization would cost accuracy and speed for nothing"
        elif m == "lora":
            alternatives[m] = "ranked below by the rules above"
        elif m == "prompt_tuning":
            alternatives[m] = "a better-suited method fits the budget (soft prompts learn less per step)"
    for e in estimates:
        if not e.applicable:
            alternatives[e.method] = f"not applicable: {e.reason}"
        elif e.error:
            alternatives[e.method] = f"its calibration run failed: {e.error}"
    return Advice(chosen=chosen, rule=rule, inputs=inputs, alternatives=alternatives)


def plan(cfg: TunegateConfig, *, base_path: str, data: TrainingSet, methods: list[Any] | None = None) -> PlanResult:
    """Estimate every candidate method, choose (for ``auto``) and check the budget (``blocked`` says why not)."""
    hardware = detect_hardware()
    estimates = []
    for m in methods if methods is not None else candidate_methods(cfg):
        est = estimate(m, base_path=base_path, data=data, price_per_hour=cfg.costs.train_per_hour(hardware.device))
        if est.applicable and est.error is None:
            est.over_budget = over_budget(est, cfg.budget, hardware)
        estimates.append(est)
    base_params = parameter_count(base_path)
    advice = None
    blocked = None
    if methods is not None:  # `tunegate compare`: every method is run, each checked against the budget itself
        chosen = None
    elif cfg.method.name == "auto":
        try:
            advice = advise(cfg, hardware, estimates, base_params)
            advice.inputs["train_rows"] = len(data)
            chosen = next(e for e in estimates if e.method == advice.chosen)
        except BudgetExceededError as exc:
            blocked, chosen = str(exc), None
    else:
        chosen = estimates[0]
        if not chosen.applicable:
            raise TunegateError(f"method '{chosen.method}' cannot run here: {chosen.reason}")
        if chosen.error:
            blocked = f"method '{chosen.method}' failed its calibration run, so training would fail too: {chosen.error}"
        elif chosen.over_budget:
            blocked = (
                f"The estimate for method '{chosen.method}' exceeds the budget: {', '.join(chosen.over_budget)}.\n"
                "Stopped before training. Raise the cap under `budget`, lower method.epochs / max_steps or "
                "data.max_train_rows, or try `method: auto` (it picks the best method that fits)."
            )
    return PlanResult(
        hardware=hardware,
        estimates=estimates,
        chosen=None if chosen is None else chosen.method,
        chosen_config=None if chosen is None else chosen.config,
        advice=advice,
        blocked=blocked,
        base_params=base_params,
        n_train=len(data),
        price_per_hour=cfg.costs.train_per_hour(hardware.device),
    )
