"""The pipeline's stages: thin glue from typed records to the library and back.

``tasks/`` wraps each in a Prefect task (retries, caching, artifacts); the CLI calls
some of them directly (``tunegate validate``, ``tunegate plan``). A stage takes and
returns small typed records (``tunegate.records``), passes on what the next stage
needs, and appends its wall time to ``runs/<id>/timings.jsonl``. The work itself lives
in the library modules imported here.
"""

from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from tunegate import (
    audit,
    changes,
    evaluation,
    forecast,
    hardware,
    judging,
    planning,
    promotion,
    prompt_versions,
    tracking,
    tuning,
    validation,
)
from tunegate.answering import AnswerSpec
from tunegate.errors import PromotionError, RegistryError
from tunegate.ladder import core as ladder
from tunegate.report import render_model_card
from tunegate.runs import resume_run, start_run

if TYPE_CHECKING:
    from tunegate.config import TunegateConfig
    from tunegate.ladder import Rung
    from tunegate.records import (
        AuditRecord,
        ChangeCheck,
        DatasetRef,
        Decision,
        DeployResult,
        DriftCheck,
        EvalResult,
        ForecastResult,
        GateInputs,
        GuardReport,
        MethodComparison,
        MethodOutcome,
        PlanResult,
        ProductionCheck,
        RunContext,
        RunOutcome,
        SourceWatch,
        TuneResult,
        ValidationResult,
    )

TIMINGS = "timings.jsonl"


def _timed(fn=None, *, label=None):
    """Run the stage on the run's device and precision, append its wall time to runs/<id>/timings.jsonl (read by
    the benchmark) and hand its result to the run's tracking backends; ``label`` (called with the stage's arguments
    after cfg and run) names what it worked on."""
    if fn is None:
        return functools.partial(_timed, label=label)

    @functools.wraps(fn)
    def wrapper(cfg, run, *args, **kwargs):
        t0 = time.perf_counter()
        name = fn.__name__ + (f"[{label(*args, **kwargs)}]" if label else "")
        try:
            with hardware.using(run.placement):
                result = fn(cfg, run, *args, **kwargs)
        finally:
            line = {"stage": name, "seconds": round(time.perf_counter() - t0, 3)}
            with open(Path(run.run_dir) / TIMINGS, "a") as f:
                f.write(json.dumps(line) + "\n")
        tracking.stage_done(cfg.tracking, run, name, result)
        return result

    return wrapper


def prepare_run(cfg: TunegateConfig, resume: str | None = None) -> RunContext:
    """Resolve the base model (converting a GGUF once) and create the run folder; or, with ``resume``, take up
    that run's folder again (its training continues from its newest checkpoint)."""
    return resume_run(cfg, resume) if resume else start_run(cfg)


@_timed
def validate_data(cfg: TunegateConfig, run: RunContext) -> ValidationResult:
    """All data checks; on success the normalized train/eval frames are written as Parquet."""
    return validation.validate_run(cfg, run.model_path, Path(run.run_dir))


@_timed(label=lambda dataset, rung, base=None: rung.name)
def evaluate_baseline(
    cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, rung: Rung, base: EvalResult | None = None
) -> EvalResult:
    """One rung of the ladder on the eval rows (a calibrated rung re-uses ``base``'s scores)."""
    return evaluation.evaluate_rung(
        AnswerSpec.from_config(cfg),
        cfg.ladder_context(),
        run.model_path,
        dataset,
        rung,
        base,
        Path(run.run_dir) / "indexes",
    )


@_timed
def plan(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, methods: list | None = None) -> PlanResult:
    """Estimate time/memory/cost by a short calibration here and choose the method for ``auto``; writes plan.md.
    ``blocked`` is set when the budget forbids training."""
    data = planning.training_rows(AnswerSpec.from_config(cfg), run, dataset, train_on=cfg.data.train_on)
    result = planning.plan(cfg.method, cfg.budget, cfg.costs, base_path=run.model_path, data=data, methods=methods)
    result.lengths = dataset.lengths
    judging.write_plan(run, result, cfg.budget)
    return result


def method_dir(run: RunContext, method: str | None = None) -> Path:
    """Where a method's artifact and plots go: the run folder, or runs/<id>/methods/<name or label>/ in a
    comparison (a label's brackets and separators become '-')."""
    base = Path(run.run_dir)
    return base if method is None else base / "methods" / re.sub(r"[^A-Za-z0-9._-]+", "-", method).strip("-")


@_timed
def tune(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    *,
    progress: bool = True,
    compare: bool = False,
    subdir: str | None = None,
) -> TuneResult:
    """Train ``cfg.method`` on the train rows; ``compare`` puts the outputs under methods/<name>/, ``subdir``
    (seeds/seed-<n> for one of ``gate.seeds``, forecast/rows-<n>) under that folder."""
    where = method_dir(run, cfg.method.key if compare else None)
    if subdir:
        where = where / subdir
    spec = AnswerSpec.from_config(cfg)
    with tracking.training(cfg.tracking, run, cfg.method.name):  # each step's loss to the tracking backends
        return tuning.tune(cfg.method, spec, run, dataset, where, train_on=cfg.data.train_on, progress=progress)


@_timed
def forecast_subsets(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> list[DatasetRef]:
    """`tunegate forecast`: the dataset cut to nested fractions of its train rows (``forecast.fractions``)."""
    train = pl.read_parquet(dataset.train_path)
    rows = forecast.nested_rows(train, cfg.forecast.fractions, seed=cfg.data.split_seed, task=cfg.task)
    return [forecast.subset(dataset, train, r, Path(run.run_dir) / forecast.FOLDER) for r in rows]


@_timed
def learning_curve(
    cfg: TunegateConfig,
    run: RunContext,
    baselines: list[EvalResult],
    points: list[tuple[int, TuneResult, EvalResult]],
    plan: PlanResult | None = None,
    in_report: bool = False,
) -> ForecastResult:
    """`tunegate forecast`: fit and extrapolate the learning curve against the best baseline; forecast.md/json/png
    (``in_report``: also appended to the run's report, after a rejected decision)."""
    price = plan.price_per_hour if plan is not None else cfg.costs.cpu_per_hour
    from tunegate.selection import best_baseline

    best = best_baseline(baselines, cfg.gate_metric)
    result = forecast.write(
        forecast.learning_curve(cfg.gate_spec, cfg.forecast, points, best, price_per_hour=price), Path(run.run_dir)
    )
    if in_report:
        judging.append_to_report(run, forecast.render(result).replace("# Forecast", "## Forecast", 1))
    return result


@_timed
def evaluate_tuned(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, tuned: TuneResult) -> EvalResult:
    """The tuned artifact on the same eval rows as the ladder."""
    return evaluation.evaluate_tuned(AnswerSpec.from_config(cfg), run.model_path, dataset, tuned)


@_timed
def check_guards(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    tuned: TuneResult,
    tuned_eval: EvalResult,
    *,
    compare: bool = False,
) -> GuardReport:
    """What tuning may break (``guards:``): each guard the config turns on, the candidate against the base model (or
    the best rung) on the same rows; writes guards.json (their per-row evidence) and plots/guard_<name>.png (in
    methods/<name>/ for an entry of `tunegate compare`)."""
    from tunegate.guards.checking import check
    from tunegate.guards.context import GuardContext
    from tunegate.packaged_models import cache_root

    ctx = GuardContext(
        spec=AnswerSpec.from_config(cfg),
        metric=cfg.gate_metric,
        model_path=run.model_path,
        model_sha=run.model_sha,
        precision=f"{run.placement.device}/{run.placement.dtype}",
        dataset=dataset,
        tuned=tuned,
        tuned_eval=tuned_eval,
        baselines=baselines,
        run_dir=method_dir(run, cfg.method.key if compare else None),
        config_dir=cfg.config_dir,
        alpha=cfg.gate.alpha,
        power=cfg.gate.power,
        resamples=cfg.gate.bootstrap_samples,
        seed=cfg.gate.seed,
        slice_columns=list(cfg.data.slice_columns),
        cache_dir=cache_root() / "guards",
    )
    return check(cfg.guards, ctx)


@_timed
def evaluate_production(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> ProductionCheck:
    """The current production model on this run's eval rows, answered as it was registered; or why not."""
    return promotion.production_check(
        cfg.registry,
        AnswerSpec.from_config(cfg),
        dataset,
        must_beat_production=cfg.gate.must_beat_production,
        config_dir=cfg.config_dir,
    )


@_timed
def summarize_ladder(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, baselines: list[EvalResult]) -> dict:
    """`tunegate baselines`: the ladder's table (ladder.md, ladder.json) and predictions, no tuning."""
    return judging.summarize_ladder(cfg.gate_spec, run, dataset, baselines)


@_timed
def compare(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, inputs: GateInputs) -> Decision:
    """Tuned vs the best baseline (and production) on the same rows: the declared gate, costs, break-even; the
    model table in ``Decision.models``; writes decision.json, report.md, report.html and plots/."""
    return judging.compare(cfg.gate_spec, run, dataset, inputs)


@_timed
def compare_methods(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    outcomes: list[MethodOutcome],
    plan: PlanResult | None = None,
) -> MethodComparison:
    """`tunegate compare`'s table: every rung and method on the same rows, CIs, costs, the gate's verdict each."""
    return judging.compare_methods(cfg.gate_spec, cfg.budget, run, dataset, baselines, outcomes, plan)


@_timed
def deploy(
    cfg: TunegateConfig,
    run: RunContext,
    decision: Decision,
    tuned: TuneResult,
    production: ProductionCheck | None = None,
    best: EvalResult | None = None,
) -> DeployResult:
    """Register the tuned artifact as a new immutable version; move ``production`` only if promoted, the registry
    copy re-scores to the run's metric, and production is still the version this run was compared with. Not
    promoted, with ``best`` (the best rung) a searched prompt: that prompt is registered too, as a prompt version
    (alias ``prompt``) that predict and serve answer with."""
    train_mean = decision.provenance.get("train_mean")
    labels = list(cfg.data.label_answers())
    card = render_model_card(
        name=cfg.registry.model_name,
        run=run,
        decision=decision,
        tuned=tuned,
        config=cfg.model_dump(mode="json"),
        labels=labels,
    )
    result = promotion.register_run(
        cfg.registry,
        run,
        decision,
        tuned,
        production,
        card=card,
        expect_production=cfg.gate.must_beat_production,
        train_mean=train_mean,
    )
    if decision.decision != "promote" and prompt_versions.registrable(best):
        try:
            version, _, message = promotion.register_prompt(
                cfg.registry,
                run,
                decision,
                best,
                AnswerSpec.from_config(cfg),
                pl.read_parquet(Path(run.run_dir) / "data" / "train.parquet"),
                train_mean=train_mean,
            )
        except (OSError, RegistryError) as exc:  # the gate's verdict and the tuned version stand without it
            version, message = None, f"the best rung {best.name} was NOT registered as a prompt version: {exc}"
        result = result.model_copy(update={"prompt_version": version, "message": f"{result.message}; {message}"})
    judging.record_deployment(run, result)
    if decision.decision == "promote" and not result.production_moved:
        raise PromotionError(result.message)
    return result


def check_change(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, *, force: bool = False) -> ChangeCheck:
    """Retrain only when the data (or config) differ from the newest registered version's, or when forced."""
    return changes.check_run(cfg.registry, run, dataset, force=force)


def source_files(cfg: TunegateConfig) -> list[Path]:
    """The raw files a run reads: train, eval, and what the rungs read (RAG's documents)."""
    files = [cfg.resolve(cfg.data.train)]
    if cfg.data.eval is not None:
        files.append(cfg.resolve(cfg.data.eval))
    return files + ladder.source_paths(cfg.baselines, cfg.ladder_context())


def watch_sources(cfg: TunegateConfig) -> SourceWatch:
    """The data-change trigger: have the raw source files changed since it last looked?"""
    return changes.watch_sources(cfg.registry, source_files(cfg))


def check_drift(cfg: TunegateConfig, *, min_requests: int = 100) -> DriftCheck:
    """The drift trigger: have the inputs served since production's version went live moved away from its eval
    rows past ``serve.drift_threshold``? (the newest ``min_requests``..all logged production requests)"""
    from tunegate.traffic.shadow import production_drift

    return production_drift(
        cfg.registry.path,
        cfg.registry.model_name,
        log_dir=cfg.serve.log_dir,
        threshold=cfg.serve.drift_threshold,
        min_requests=min_requests,
    )


def remember_sources(cfg: TunegateConfig, watch: SourceWatch, outcome: str) -> None:
    """What the trigger saw, and what the retrain made of it."""
    changes.remember(cfg.registry, watch.fingerprint, outcome=outcome)


def record_audit(cfg: TunegateConfig, run: RunContext, outcome: RunOutcome) -> AuditRecord:
    """Append this run's record (and copy its evidence) to the registry's audit log; failed and skipped runs too."""
    record = audit.record_run(cfg.registry, cfg.gate_spec, cfg.method.name, run, outcome)
    tracking.stage_done(cfg.tracking, run, "record_audit", record)
    return record
