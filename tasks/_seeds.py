"""The candidate and the compared methods as task runs: trained and scored once, or once per seed with
``gate.seeds`` (each seed its own ``tune`` + ``evaluate_tuned`` runs), handed to the task runner (``_runner``)
first and read back after, so that with a dask runner they run on workers at once.

Plain code over the tasks (like ``evaluate_baseline.evaluate_ladder``), so the flows wire seeds without reaching
into the library.
"""

from __future__ import annotations

from typing import Callable

from tunegate.config import TunegateConfig
from tunegate.records import DatasetRef, EvalResult, MethodOutcome, RunContext, TuneResult
from tunegate.seeds import chosen_seed, seed_dir, seed_result
from tunegate.tasks._runner import failed, submit
from tunegate.tasks.check_guards import check_guards
from tunegate.tasks.evaluate_tuned import evaluate_tuned
from tunegate.tasks.tune import tune

Stage = Callable[[str], None]


def _nowhere(stage: str) -> None:
    pass


def submit_candidate(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, on_stage: Stage = _nowhere) -> list:
    """The candidate handed to the task runner: trained and scored once, or once per seed with ``gate.seeds``
    (each seed its own ``tune`` + ``evaluate_tuned`` runs; on workers at once with a dask task runner). A
    sequential failure raises here; :func:`candidate` reads the rest."""
    runs = []
    for seeded in cfg.seed_configs() if cfg.gate.seeds > 1 else [cfg]:
        subdir = seed_dir(seeded.method.seed) if cfg.gate.seeds > 1 else None
        on_stage("tune")
        trained = submit(tune, fail_fast=True, cfg=seeded, run=run, dataset=dataset, subdir=subdir)
        on_stage("evaluate_tuned")
        scored = submit(evaluate_tuned, fail_fast=True, cfg=seeded, run=run, dataset=dataset, tuned=trained)
        runs.append((seeded, trained, scored))
    return runs


def candidate(
    cfg: TunegateConfig, runs: list, on_stage: Stage = _nowhere
) -> tuple[TuneResult, EvalResult, list[tuple[TuneResult, EvalResult]] | None]:
    """The submitted candidate's training and evaluation (a failure raises, as a single training's would); with
    ``gate.seeds``, the chosen seed's (under the candidate's own name) and every seed's pair."""
    pairs = []
    for seeded, trained, scored in runs:
        on_stage("tune")
        tuned = trained.result()
        on_stage("evaluate_tuned")
        pairs.append((seeded, tuned, scored.result()))
    if cfg.gate.seeds == 1:
        ((_, tuned, tuned_eval),) = pairs
        return tuned, tuned_eval, None
    seeds = [(t, seed_result(e, s.method.seed)) for s, t, e in pairs]
    tuned, tuned_eval = chosen_seed(seeds, cfg.gate_metric)
    return tuned, tuned_eval, seeds


def submit_method(mcfg: TunegateConfig, run: RunContext, dataset: DatasetRef, baselines: list[EvalResult] | None):
    """One entry of `tunegate compare` handed to the task runner: each seed's training and scoring, then the first
    seed's guards (each run waits for its inputs). :func:`method_outcome` reads the result."""
    seeded = mcfg.gate.seeds > 1
    runs = []
    for scfg in mcfg.seed_configs() if seeded else [mcfg]:
        subdir = seed_dir(scfg.method.seed) if seeded else None
        trained = submit(tune, cfg=scfg, run=run, dataset=dataset, compare=True, subdir=subdir)
        runs.append((scfg, trained, submit(evaluate_tuned, cfg=scfg, run=run, dataset=dataset, tuned=trained)))
    guards = None
    if baselines:
        _, trained, scored = runs[0]
        guards = submit(
            check_guards, cfg=mcfg, run=run, dataset=dataset, baselines=baselines, tuned=trained, tuned_eval=scored,
            compare=True,
        )  # fmt: skip
    return mcfg, runs, guards


def method_outcome(submitted) -> MethodOutcome:
    """A submitted entry's row: trained (once, or once per seed with gate.seeds), scored under its name (its label,
    when one method is listed twice), its guards; a failure becomes its row instead of stopping the comparison
    (the guards' failure leaves them out)."""
    mcfg, runs, guards = submitted
    seeded = mcfg.gate.seeds > 1
    key = mcfg.method.key
    named = dict(method=key, registered=mcfg.method.name if key != mcfg.method.name else None)
    results = []
    for scfg, trained, scored in runs:
        if failed(trained):
            return MethodOutcome(**named, status="failed", error=error_message(trained.state))
        if failed(scored):
            return MethodOutcome(**named, status="failed", error=error_message(scored.state), tuned=trained.result())
        result = scored.result().model_copy(update={"name": f"tuned:{key}"})
        results.append((trained.result(), seed_result(result, scfg.method.seed) if seeded else result))
    first_tuned, first = results[0]
    first = first.model_copy(update={"name": f"tuned:{key}"})
    guarded = guards.result() if guards is not None and not failed(guards) else None
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
