"""``gate.seeds``: the method trained once per seed, each seed its own ``tune`` + ``evaluate_tuned`` task runs.

Plain code over the tasks (like ``evaluate_baseline.evaluate_ladder``), so the flows wire seeds without reaching
into the library.
"""

from __future__ import annotations

from typing import Callable

from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, EvalResult, MethodOutcome, RunContext, TuneResult
from tunegate.seeds import chosen_seed, seed_dir, seed_result
from tunegate.tasks.check_guards import check_guards
from tunegate.tasks.evaluate_tuned import evaluate_tuned
from tunegate.tasks.tune import tune


def train_seeds(
    cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, on_stage: Callable[[str], None] = lambda s: None
) -> tuple[TuneResult, EvalResult, list[tuple[TuneResult, EvalResult]]]:
    """Each seed trained and scored (a failure raises, as a single training's would); returns the chosen seed's
    training and evaluation (under the candidate's own name) and every seed's pair."""
    seeds = []
    for seeded in cfg.seed_configs():
        on_stage("tune")
        trained = tune(seeded, run, dataset, subdir=seed_dir(seeded.method.seed))
        on_stage("evaluate_tuned")
        seeds.append((trained, seed_result(evaluate_tuned(seeded, run, dataset, trained), seeded.method.seed)))
    tuned, tuned_eval = chosen_seed(seeds, cfg.gate_metric)
    return tuned, tuned_eval, seeds


def compare_one_method(
    mcfg: TunegateConfig, run: RunContext, dataset: DatasetRef, baselines: list[EvalResult] | None = None
) -> MethodOutcome:
    """One entry of `tunegate compare`: trained (once, or once per seed with gate.seeds), scored under its name
    (its label, when one method is listed twice) and, with ``baselines``, its guards checked; a failure becomes its
    row instead of stopping the comparison."""
    seeded = mcfg.gate.seeds > 1
    key = mcfg.method.key
    named = dict(method=key, registered=mcfg.method.name if key != mcfg.method.name else None)
    results = []
    for scfg in mcfg.seed_configs() if seeded else [mcfg]:
        trained = tune(
            scfg, run, dataset, compare=True, subdir=seed_dir(scfg.method.seed) if seeded else None, return_state=True
        )
        if trained.is_failed():
            return MethodOutcome(**named, status="failed", error=error_message(trained))
        scored = evaluate_tuned(scfg, run, dataset, trained.result(), return_state=True)
        if scored.is_failed():
            return MethodOutcome(**named, status="failed", error=error_message(scored), tuned=trained.result())
        result = scored.result().model_copy(update={"name": f"tuned:{key}"})
        results.append((trained.result(), seed_result(result, scfg.method.seed) if seeded else result))
    first_tuned, first = results[0]
    first = first.model_copy(update={"name": f"tuned:{key}"})
    guarded = None
    if baselines:
        state = check_guards(mcfg, run, dataset, baselines, first_tuned, first, compare=True, return_state=True)
        guarded = state.result() if not state.is_failed() else None
    return MethodOutcome(
        **named,
        status="completed",
        tuned=first_tuned,
        evaluation=first,
        seeds=[e for _, e in results] if seeded else [],
        guards=guarded,
    )


def error_message(state) -> str:
    """The exception message of a failed task state (no traceback)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - we only want its text
        return str(exc)
    return state.message or "failed"
