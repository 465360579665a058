"""The work of each pipeline stage, as plain functions over typed records.

``tasks/`` wraps each in a Prefect task (retries, caching, artifacts); the CLI calls
some of them directly (``tunegate validate``). Each loads what it needs from paths.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from pathlib import Path

import polars as pl
import yaml

from tunegate import answering, changes, evaluation, ladder, planning, promotion
from tunegate.audit import AuditLog
from tunegate.config import TunegateConfig
from tunegate.costs import cost_line
from tunegate.data import canonical_columns
from tunegate.decision import best_baseline, costs_table, decide
from tunegate.errors import PromotionError, RegistryError
from tunegate.ladder import Rung
from tunegate.methods import get_method
from tunegate.methods.base import TuningMethod
from tunegate.modeling import load_model, load_tokenizer, resolve_model
from tunegate.provenance import code_version, package_versions, sha256_json
from tunegate.records import (
    AuditRecord,
    ChangeCheck,
    DatasetRef,
    Decision,
    DeployResult,
    EvalResult,
    MethodComparison,
    MethodOutcome,
    PlanResult,
    ProductionCheck,
    RunContext,
    TuneResult,
    ValidationResult,
)
from tunegate.registry import PRODUCTION, UNSET, Registry, atomic_write_text
from tunegate.report import (
    describe_rung,
    prices_label,
    render_comparison,
    render_html,
    render_ladder,
    render_model_card,
    render_plan,
    render_run_report,
    save_break_even_plot,
    save_comparison_chart,
    save_loss_plot,
    save_quality_cost_plot,
)
from tunegate.retrieval import copy_index
from tunegate.scoring import LMAnswerer
from tunegate.stats import bootstrap_ci, paired_bootstrap
from tunegate.training import release_memory
from tunegate.validation import validate, write_report

log = logging.getLogger(__name__)

TIMINGS = "timings.jsonl"


def _timed(fn):
    """Append the stage's wall time to runs/<id>/timings.jsonl (read by the benchmark)."""

    @functools.wraps(fn)
    def wrapper(cfg, run, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(cfg, run, *args, **kwargs)
        finally:
            rung = next((a.name for a in args if isinstance(a, Rung)), None)
            line = {"stage": fn.__name__ + (f"[{rung}]" if rung else ""), "seconds": round(time.perf_counter() - t0, 3)}
            with open(Path(run.run_dir) / TIMINGS, "a") as f:
                f.write(json.dumps(line) + "\n")

    return wrapper


def prepare_run(cfg: TunegateConfig) -> RunContext:
    """Resolve the base model (converting the default GGUF once) and create the run folder."""
    model = resolve_model(cfg.model, config_dir=cfg.config_dir)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run_dir = (cfg.output.dir / run_id).resolve()
    run_dir.mkdir(parents=True, exist_ok=False)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return RunContext(
        run_id=run_id,
        run_dir=str(run_dir),
        model_spec=cfg.model,
        model_path=model.path,
        model_id=model.model_id,
        model_sha=model.sha,
        config_hash=cfg.config_hash(),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


@_timed
def validate_data(cfg: TunegateConfig, run: RunContext) -> ValidationResult:
    """All data checks; on success the normalized train/eval frames are written as Parquet."""
    tokenizer = load_tokenizer(run.model_path)
    outcome = validate(cfg, tokenizer)
    run_dir = Path(run.run_dir)
    md, js = write_report(outcome, run_dir)
    dataset = None
    if outcome.ok:
        data_dir = run_dir / "data"
        data_dir.mkdir(exist_ok=True)
        outcome.train.write_parquet(data_dir / "train.parquet")
        outcome.eval.write_parquet(data_dir / "eval.parquet")
        dataset = DatasetRef(
            train_path=str(data_dir / "train.parquet"),
            eval_path=str(data_dir / "eval.parquet"),
            data_hash=outcome.stats["data_hash"],
            n_train=outcome.train.height,
            n_eval=outcome.eval.height,
        )
    return ValidationResult(
        ok=outcome.ok,
        n_errors=len(outcome.errors),
        n_warnings=len(outcome.warnings),
        report_md=str(md),
        report_json=str(js),
        summary=outcome.summary(),
        dataset=dataset,
    )


def baseline_cache_key(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, rung: Rung) -> str:
    """Data hash + model + everything that shapes the baseline's prompts (documents included) + code version.

    The tuning method is deliberately absent except its max_length (it bounds the
    input truncation), so changing only the method reuses the baselines.
    """
    return sha256_json(
        {
            "data": dataset.data_hash,
            "model": run.model_sha,
            "rung": ladder.rung_fingerprint(rung),
            "task": cfg.task,
            "labels": cfg.data.label_answers(),
            "prompt": cfg.prompt.model_dump(),
            "baselines": cfg.baselines.model_dump(mode="json", include={"batch_size", "max_new_tokens"}),
            "max_length": cfg.method.max_length,
            "code": code_version(),
        }
    )


@_timed
def evaluate_baseline(
    cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, rung: Rung, base: EvalResult | None = None
) -> EvalResult:
    """One rung of the ladder on the eval rows; a retrieval index it used is saved under runs/<id>/indexes/<rung>/.

    A calibrated rung takes its base rung's result (``base``) and re-uses its scores.
    """
    tokenizer = load_tokenizer(run.model_path)
    answerer = LMAnswerer(load_model(run.model_path))
    train = pl.read_parquet(dataset.train_path)
    if rung.kind == "calibrated":
        if base is None or base.name != rung.base.name:
            raise ValueError(f"rung {rung.name} needs the result of {rung.base.name}")
        t0 = time.perf_counter()
        texts, prior = ladder.calibration_inputs(cfg, train, rung)
        aug = ladder.augment_for(cfg, rung.base, train, texts)
        spec = answering.AnswerSpec.from_config(cfg)
        ids = answering.prompt_ids(
            spec, tokenizer, texts, shots=aug.shots if aug else None, contexts=aug.contexts if aug else None
        )
        logp, _ = answering.label_logprobs(answerer, tokenizer, spec, ids)
        offset = ladder.calibration_offset(logp, prior)
        return evaluation.calibrated(
            base,
            cfg=cfg,
            name=rung.name,
            offset=offset,
            setup_seconds=time.perf_counter() - t0,
            details={"calibration": rung.params["calibration"], "calibration_inputs": len(texts)},
        )
    eval_df = pl.read_parquet(dataset.eval_path)
    augment = ladder.augment_for(cfg, rung, train, eval_df.get_column(canonical_columns(cfg.task)[0]).to_list())
    result = evaluation.evaluate(
        answerer,
        tokenizer,
        cfg=cfg,
        eval_df=eval_df,
        name=rung.name,
        kind="baseline",
        augment=augment,
        fallback=_train_mean(cfg, train),
    )
    if augment is not None and augment.index is not None:
        saved = copy_index(augment.index, Path(run.run_dir) / "indexes" / rung.name)
        result.details["index"] = str(saved)
    return result


def _train_mean(cfg: TunegateConfig, train: pl.DataFrame | str | Path) -> float | None:
    """Regression: the train mean (of a frame or a Parquet file), used for answers that contain no number."""
    if cfg.task != "regression":
        return None
    if not isinstance(train, pl.DataFrame):
        train = pl.read_parquet(train)
    return float(train.get_column("label").str.strip_chars().cast(pl.Float64).mean())


@_timed
def plan(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, methods: list | None = None) -> PlanResult:
    """Estimate time/memory/cost by a short calibration here and choose the method for ``auto``.

    Writes plan.json and plan.md; ``blocked`` is set when the budget forbids training.
    """
    tokenizer = load_tokenizer(run.model_path)
    data = evaluation.training_set(
        cfg, tokenizer, pl.read_parquet(dataset.train_path), model_sha=run.model_sha, data_hash=dataset.data_hash
    )
    result = planning.plan(cfg, base_path=run.model_path, data=data, methods=methods)
    run_dir = Path(run.run_dir)
    atomic_write_text(run_dir / "plan.json", result.model_dump_json(indent=2))
    atomic_write_text(run_dir / "plan.md", render_plan(result, cfg))
    return result


def method_dir(run: RunContext, method: str | None = None) -> Path:
    """Where a method's artifact and plots go: the run folder, or runs/<id>/methods/<name>/ in a comparison."""
    base = Path(run.run_dir)
    return base if method is None else base / "methods" / method


@_timed
def tune(
    cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, *, progress: bool = True, compare: bool = False
) -> TuneResult:
    """Train ``cfg.method`` on the train rows; ``compare`` puts the outputs under methods/<name>/."""
    release_memory()  # what an earlier stage freed goes back to the OS, so peak RSS is this method's
    method = get_method(cfg.method.name)
    if cfg.task not in method.tasks():
        raise ValueError(f"method '{method.name}' does not apply to {cfg.task} tasks")
    tokenizer = load_tokenizer(run.model_path)
    data = evaluation.training_set(
        cfg, tokenizer, pl.read_parquet(dataset.train_path), model_sha=run.model_sha, data_hash=dataset.data_hash
    )
    where = method_dir(run, method.name if compare else None)
    out_dir = where / "artifact"
    out_dir.mkdir(parents=True, exist_ok=True)
    art = method.train(base_path=run.model_path, data=data, cfg=cfg.method, out_dir=out_dir, progress=progress)
    st = art.train_stats
    adapter_dir = out_dir / "adapter"
    if adapter_dir.is_dir():
        tokenizer.save_pretrained(adapter_dir)  # the adapter folder is self-describing: weights + tokenizer
    method.write_meta(
        out_dir,
        {
            "method": method.name,
            "method_config": cfg.method.model_dump(mode="json"),
            "base_model": {"spec": run.model_spec, "id": run.model_id, "sha": run.model_sha},
            **answering.AnswerSpec.from_config(cfg).meta(),  # how serving answers it: as its evaluation did
        },
    )
    save_loss_plot(st.losses, where / "loss.png", xlabel=method.loss_axis)
    return TuneResult(
        method=method.name,
        artifact_dir=str(out_dir),
        train_seconds=st.seconds,
        peak_rss_mb=st.peak_rss_mb,
        base_footprint_mb=art.base_footprint_mb,
        trainable_params=art.trainable_params,
        total_params=art.total_params,
        n_steps=st.steps,
        n_train_tokens=st.tokens,
        tokens_per_s=st.tokens_per_s,
        loss_curve=st.losses,
        epoch_losses=st.epoch_losses,
        checkpoints=st.checkpoints,
        details=st.extra,
    )


@_timed
def evaluate_tuned(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, tuned: TuneResult) -> EvalResult:
    tokenizer = load_tokenizer(run.model_path)
    answerer = get_method(tuned.method).load_for_inference(
        base_path=run.model_path, artifact_dir=Path(tuned.artifact_dir)
    )
    eval_df = pl.read_parquet(dataset.eval_path)
    fallback = _train_mean(cfg, dataset.train_path)
    return evaluation.evaluate(
        answerer, tokenizer, cfg=cfg, eval_df=eval_df, name=f"tuned:{tuned.method}", kind="tuned", fallback=fallback
    )


def ladder_rows(cfg: TunegateConfig, baselines: list[EvalResult]) -> list[dict]:
    """Each rung's gate metric with its bootstrap CI and its costs, for the ladder tables."""
    metric = cfg.gate_metric
    best = best_baseline(baselines, metric)
    refs = [p.reference for p in best.predictions]
    rows = []
    for b in baselines:
        v, lo, hi = bootstrap_ci(
            metric,
            side=evaluation.per_example_view(b, cfg.task, metric),
            references=refs,
            resamples=cfg.gate.bootstrap_samples,
            confidence=cfg.gate.confidence,
            seed=cfg.gate.seed,
        )
        rows.append(
            {
                "name": b.name,
                "metric": v,
                "ci_low": lo,
                "ci_high": hi,
                "best": b.name == best.name,
                "prompt": describe_rung(b),
                "prompt_tokens_per_request": b.prompt_tokens_per_request,
                "retrieval_ms_per_request": b.retrieval_ms_per_request,
                "latency_ms_per_request": b.latency_ms_per_request,
                "setup_seconds": b.setup_seconds,
                "index_build_seconds": b.index_build_seconds,
                "index_cached": bool(b.details.get("index_cached")),
                "index_mb": b.index_mb,
                "leakage_excluded": b.details.get("leakage_excluded", 0),
            }
        )
    return rows


@_timed
def summarize_ladder(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, baselines: list[EvalResult]) -> dict:
    """`tunegate baselines`: the ladder's table (ladder.md, ladder.json) and predictions, no tuning."""
    rows = ladder_rows(cfg, baselines)
    run_dir = Path(run.run_dir)
    _write_predictions(run_dir, baselines)
    best = next(r for r in rows if r["best"])
    out = {"gate_metric": cfg.gate_metric, "best": best["name"], "rows": rows, "report_md": str(run_dir / "ladder.md")}
    atomic_write_text(run_dir / "ladder.json", json.dumps(out, indent=2))
    atomic_write_text(
        run_dir / "ladder.md", render_ladder(rows, metric=cfg.gate_metric, cfg=cfg, run=run, dataset=dataset)
    )
    return out


def _write_predictions(run_dir: Path, results: list[EvalResult]) -> None:
    pred_dir = run_dir / "predictions"
    pred_dir.mkdir(exist_ok=True)
    for r in results:
        lines = [p.model_dump_json() for p in r.predictions]
        (pred_dir / f"{r.name.replace(':', '_')}.jsonl").write_text("\n".join(lines) + "\n")


def provenance(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> dict:
    return {
        "run_id": run.run_id,
        "data_hash": dataset.data_hash,
        "n_train": dataset.n_train,
        "n_eval": dataset.n_eval,
        "config_hash": run.config_hash,
        "code_version": code_version(),
        "packages": package_versions(),
        "model_id": run.model_id,
        "model_spec": run.model_spec,
        "model_sha": run.model_sha,
    }


@_timed
def evaluate_production(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef) -> ProductionCheck:
    """The current production model of ``registry.model_name`` on this run's eval rows (gate.must_beat_production).

    It is answered with its own base model, prompt and length budget as recorded in its artifact.
    """
    name = cfg.registry.model_name
    if not cfg.gate.must_beat_production:
        return ProductionCheck(note="gate.must_beat_production is off")
    reg = Registry(cfg.registry.path)
    version = reg.aliases(name).get(PRODUCTION) if name in reg.models() else None
    if version is None:
        return ProductionCheck(note=f"no production model of '{name}' yet: the best baseline is the only bar")
    info = reg.get(name, version)
    meta = TuningMethod.read_meta(info.path / "artifact")
    ref = f"{name}@v{version}"
    if meta.get("task") != cfg.task or (meta.get("labels") or {}) != cfg.data.label_answers():
        return ProductionCheck(
            version=ref, number=version, note=f"production {ref} answers another task or label set; not compared"
        )
    result = promotion.score_version(
        info,
        cfg,
        pl.read_parquet(dataset.eval_path),
        name=ref,
        kind="production",
        fallback=_train_mean(cfg, dataset.train_path),
    )
    return ProductionCheck(
        version=ref,
        number=version,
        evaluation=result,
        note=f"production {ref} ({meta['method']}) scored on the same rows",
    )


def gate_decision(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    tuned_eval: EvalResult,
    tuned: TuneResult,
    *,
    plan: PlanResult | None = None,
    production: EvalResult | None = None,
) -> Decision:
    """The gate's verdict for one tuned model against the best baseline and production (no files written)."""
    device = plan.hardware.device if plan is not None else "cpu"
    price = cfg.costs.train_per_hour(device)
    lines = [cost_line(cfg.costs, b, train_price_per_hour=price) for b in baselines]
    lines.append(cost_line(cfg.costs, tuned_eval, train_price_per_hour=price, tune=tuned))
    if production is not None:
        lines.append(cost_line(cfg.costs, production, train_price_per_hour=price, kind="production"))
    costs = costs_table(baselines, tuned_eval, tuned)
    if production is not None:
        costs[production.name] = {
            "prompt_tokens_per_request": round(production.prompt_tokens_per_request, 1),
            "output_tokens_per_request": round(production.output_tokens_per_request, 1),
            "latency_ms_per_request": round(production.latency_ms_per_request, 1),
        }
    return decide(
        task=cfg.task,
        metric=cfg.gate_metric,
        gate=cfg.gate,
        baselines=baselines,
        tuned=tuned_eval,
        production=production,
        costs=costs,
        cost_model=lines,
        prices={**cfg.costs.model_dump(mode="json"), "train_per_hour": price, "training_device": device},
        requests_per_month=cfg.costs.requests_per_month,
        declared={"config_hash": run.config_hash, "declared_at": run.started_at},
        provenance=provenance(cfg, run, dataset),
    )


def model_rows(cfg: TunegateConfig, decision: Decision, results: list[EvalResult]) -> list[dict]:
    """Every rung and candidate with its metric CI, delta vs the best baseline (paired CI) and its costs."""
    metric = cfg.gate_metric
    boot = dict(resamples=cfg.gate.bootstrap_samples, confidence=cfg.gate.confidence, seed=cfg.gate.seed)
    by_name = {r.name: r for r in results}
    best = by_name[decision.best_baseline]
    refs = [p.reference for p in best.predictions]
    best_view = evaluation.per_example_view(best, cfg.task, metric)
    lines = {c.name: c for c in decision.cost_model}
    rows = []
    for r in results:
        view = evaluation.per_example_view(r, cfg.task, metric)
        v, lo, hi = bootstrap_ci(metric, side=view, references=refs, **boot)
        row = {
            "name": r.name,
            "kind": r.kind,
            "metric": v,
            "ci_low": lo,
            "ci_high": hi,
            "delta": v - best.metrics[metric],
        }
        if r.kind != "baseline":
            d = paired_bootstrap(metric, candidate=view, baseline=best_view, references=refs, **boot)
            row.update(delta_ci_low=d.ci_low, delta_ci_high=d.ci_high)
        c = lines[r.name]
        row.update(
            prompt_tokens=c.prompt_tokens,
            output_tokens=c.output_tokens,
            latency_ms=c.latency_ms,
            one_off_usd=c.one_off_usd,
            one_off_what=c.one_off_what,
            per_request_usd=c.per_request_usd,
            monthly_usd=c.monthly_usd,
        )
        row["decision"] = {
            "baseline": "best baseline" if r.name == best.name else "baseline",
            "production": "production",
            "tuned": decision.decision,
        }[r.kind]
        rows.append(row)
    return rows


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@_timed
def compare(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    tuned_eval: EvalResult,
    tuned: TuneResult,
    plan: PlanResult | None = None,
    production: ProductionCheck | None = None,
) -> Decision:
    """Tuned vs the best baseline (and production) on the same rows: the declared gate, costs, break-even;
    writes decision.json, report.md, report.html and plots/."""
    prod_eval = production.evaluation if production is not None else None
    decision = gate_decision(cfg, run, dataset, baselines, tuned_eval, tuned, plan=plan, production=prod_eval)
    if production is not None and prod_eval is None:
        decision.reasons.append(production.note)
    run_dir = Path(run.run_dir)
    results = [*baselines, tuned_eval, *([prod_eval] if prod_eval is not None else [])]
    _write_predictions(run_dir, results)
    # write-then-rename: a crash never leaves a half-written decision record behind
    atomic_write_text(run_dir / "decision.json", decision.model_dump_json(indent=2))
    rows = model_rows(cfg, decision, results)
    atomic_write_text(run_dir / "models.json", json.dumps(rows, indent=2))
    plots = run_dir / "plots"
    save_comparison_chart(rows, cfg.gate_metric, plots / "metric.png", confidence=cfg.gate.confidence)
    save_quality_cost_plot(rows, cfg.gate_metric, plots / "quality_vs_cost.png", prices_label(decision.prices))
    save_break_even_plot(
        decision.cost_model, decision.break_even, plots / "break_even.png", cfg.costs.requests_per_month
    )
    md = render_run_report(
        cfg=cfg,
        run=run,
        decision=decision,
        rows=rows,
        tuned=tuned,
        plan=plan,
        ladder=ladder_rows(cfg, baselines),
        validation=read_json(run_dir / "validation.json"),
        unparsed=results,
    )
    write_run_report(run_dir, md, promoted=decision.decision == "promote")
    return decision


def write_run_report(run_dir: Path, md: str, *, promoted: bool | None) -> None:
    """report.md and its self-contained twin report.html (plots embedded), both written atomically."""
    atomic_write_text(run_dir / "report.md", md)
    atomic_write_text(run_dir / "report.html", render_html(md, run_dir, promoted=promoted))


def artifact_size_mb(artifact_dir: str | Path) -> float:
    """Size of what a version stores for the method (checkpoints excluded)."""
    root = Path(artifact_dir)
    return (
        sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and "checkpoints" not in f.relative_to(root).parts)
        / 2**20
    )


@_timed
def compare_methods(
    cfg: TunegateConfig,
    run: RunContext,
    dataset: DatasetRef,
    baselines: list[EvalResult],
    outcomes: list[MethodOutcome],
    plan: PlanResult | None = None,
) -> MethodComparison:
    """The measured trade-off table: every rung and method on the same rows, CIs, costs, the gate's verdict each."""
    metric = cfg.gate_metric
    best = best_baseline(baselines, metric)
    refs = [p.reference for p in best.predictions]
    boot = dict(resamples=cfg.gate.bootstrap_samples, confidence=cfg.gate.confidence, seed=cfg.gate.seed)

    def ci(result: EvalResult) -> tuple[float, float, float]:
        return bootstrap_ci(metric, side=evaluation.per_example_view(result, cfg.task, metric), references=refs, **boot)

    rows: list[dict] = []
    for b in baselines:
        v, lo, hi = ci(b)
        rows.append(
            {
                "name": b.name,
                "kind": "baseline",
                "status": "completed",
                "metric": v,
                "ci_low": lo,
                "ci_high": hi,
                "delta": v - best.metrics[metric],
                "trainable_params": 0,
                "train_seconds": 0.0,
                "latency_ms_per_request": b.latency_ms_per_request,
                "prompt_tokens_per_request": b.prompt_tokens_per_request,
                "decision": "best baseline" if b.name == best.name else "baseline",
            }
        )
    for o in outcomes:
        est = plan.estimate_for(o.method) if plan is not None else None
        row = {
            "name": o.method,
            "kind": "method",
            "status": o.status,
            "error": o.error,
            "est_train_seconds": est.est_train_seconds if est and est.applicable and not est.error else None,
        }
        if o.status == "completed" and o.evaluation is not None and o.tuned is not None:
            if [p.row for p in o.evaluation.predictions] != [p.row for p in best.predictions]:
                raise RuntimeError(f"{o.method} was scored on other rows than the baselines; refusing to compare")
            d = gate_decision(cfg, run, dataset, baselines, o.evaluation, o.tuned, plan=plan)
            v, lo, hi = ci(o.evaluation)
            t = o.tuned
            row.update(
                {
                    "metric": v,
                    "ci_low": lo,
                    "ci_high": hi,
                    "delta": d.delta,
                    "delta_ci_low": d.ci_low,
                    "delta_ci_high": d.ci_high,
                    "trainable_params": t.trainable_params,
                    "total_params": t.total_params,
                    "peak_rss_mb": t.peak_rss_mb,
                    "base_weights_mb": t.base_footprint_mb,
                    "train_seconds": t.train_seconds,
                    "n_steps": t.n_steps,
                    "first_loss": t.loss_curve[0] if t.loss_curve else None,
                    "last_loss": t.loss_curve[-1] if t.loss_curve else None,
                    "artifact_mb": artifact_size_mb(t.artifact_dir),
                    "latency_ms_per_request": o.evaluation.latency_ms_per_request,
                    "prompt_tokens_per_request": o.evaluation.prompt_tokens_per_request,
                    "decision": d.decision,
                    "details": t.details,
                }
            )
        rows.append(row)
    run_dir = Path(run.run_dir)
    _write_predictions(run_dir, [*baselines, *(o.evaluation for o in outcomes if o.evaluation is not None)])
    chart = run_dir / "compare.png"
    save_comparison_chart(rows, metric, chart, confidence=cfg.gate.confidence)
    done = [r for r in rows if r["kind"] == "method" and r["status"] == "completed"]
    winner = max(done, key=lambda r: r["metric"]) if done else None
    summary = (
        f"best method: {winner['name']} {metric} {winner['metric']:.3f} (delta {winner['delta']:+.3f} vs {best.name}, "
        f"{winner['decision']})"
        if winner
        else "no method completed"
    )
    failed = [r["name"] for r in rows if r["status"] == "failed"]
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    result = MethodComparison(
        gate_metric=metric,
        best_baseline=best.name,
        rows=rows,
        summary=summary,
        report_md=str(run_dir / "compare.md"),
        chart_png=str(chart),
    )
    atomic_write_text(run_dir / "compare.json", result.model_dump_json(indent=2))
    atomic_write_text(
        run_dir / "compare.md",
        render_comparison(result, cfg=cfg, run=run, dataset=dataset, plan=plan, ladder=ladder_rows(cfg, baselines)),
    )
    return result


@_timed
def deploy(
    cfg: TunegateConfig,
    run: RunContext,
    decision: Decision,
    tuned: TuneResult,
    production: ProductionCheck | None = None,
) -> DeployResult:
    """Register the tuned artifact as a new immutable version; move ``production`` only if promoted, the registry
    copy re-scores to the run's metric, and production is still the version this run was compared with."""
    reg = Registry(cfg.registry.path)
    name = cfg.registry.model_name
    run_dir = Path(run.run_dir)
    promote = decision.decision == "promote"
    card = render_model_card(name=name, run=run, decision=decision, tuned=tuned, cfg=cfg)
    fallback = _train_mean(cfg, run_dir / "data" / "train.parquet")
    stored = promotion.version_files(
        run_dir=run_dir,
        metric=decision.gate_metric,
        tuned_eval=decision.tuned,
        fallback=fallback,
        predictions=run_dir / "predictions" / f"tuned_{tuned.method}.jsonl",
    )
    info = reg.register(
        name,
        files={"model_card.md": card, "decision.json": decision.model_dump_json(indent=2), **stored},
        dirs={"artifact": Path(tuned.artifact_dir)},
        meta={
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
        },
    )
    rescored = None
    moved = False
    if promote:
        # compare-and-set: production must still be what evaluate_production scored (or still unset)
        expect = production.number if production is not None and cfg.gate.must_beat_production else UNSET
        try:
            result = promotion.promote(
                reg,
                name,
                info.version,
                tolerance=cfg.registry.reproduce_tolerance,
                expect=expect,
                reason=f"run {run.run_id}: {decision.summary}",
            )
            rescored, moved = result.rescore, result.moved
            message = (
                f"registered {name} v{info.version} and moved '{PRODUCTION}' to it ({rescored.note})"
                if moved
                else f"registered {name} v{info.version} but did NOT move '{PRODUCTION}': {result.message}"
            )
        except RegistryError as exc:  # production moved while this run was comparing: not promoted, say so
            message = f"registered {name} v{info.version} but did NOT move '{PRODUCTION}': {exc}"
    else:
        current = reg.aliases(name).get(PRODUCTION)
        where = f"stays at v{current}" if current else "is not set"
        message = f"registered {name} v{info.version} as a rejected candidate; '{PRODUCTION}' {where}"
    result = DeployResult(
        registered_version=info.version,
        version_dir=str(info.path),
        production_moved=moved,
        production_version=reg.aliases(name).get(PRODUCTION),
        message=message,
        rescore=rescored,
    )
    atomic_write_text(run_dir / "deployment.json", result.model_dump_json(indent=2))
    report = (run_dir / "report.md").read_text()
    write_run_report(run_dir, report + f"\n## Deployment\n\n{message}.\n", promoted=moved)
    if promote and not moved:
        raise PromotionError(message)
    return result


def check_change(cfg: TunegateConfig, run: RunContext, dataset: DatasetRef, *, force: bool = False) -> ChangeCheck:
    """Retrain only when the data (or config) differ from the newest registered version's, or when forced."""
    result = changes.check(cfg, data_hash=dataset.data_hash, config_hash=run.config_hash, force=force)
    atomic_write_text(Path(run.run_dir) / "change.json", result.model_dump_json(indent=2))
    return result


def record_audit(
    cfg: TunegateConfig,
    run: RunContext,
    *,
    status: str,
    decision: Decision | None = None,
    deployment: DeployResult | None = None,
    tuned: TuneResult | None = None,
    failed_stage: str | None = None,
    error: str | None = None,
    trigger: str | None = None,
    headline: str | None = None,
) -> AuditRecord:
    """Append this run's record (and copy its evidence) to the registry's audit log; failed and skipped runs too."""
    run_dir = Path(run.run_dir)
    rec = AuditRecord(
        run_id=run.run_id,
        time="",
        model_name=cfg.registry.model_name,
        status=status,
        failed_stage=failed_stage,
        error=error[:2000] if error else None,
        task=cfg.task,
        config_hash=run.config_hash,
        code_version=code_version(),
        base_model=run.model_spec,
        method=tuned.method if tuned is not None else cfg.method.name,
        run_dir=str(run_dir),
        gate={**cfg.gate.model_dump(mode="json"), "metric": cfg.gate_metric},
        gate_metric=cfg.gate_metric,
        trigger=trigger,
        headline=headline,
    )
    validation = read_json(run_dir / "validation.json") or {}
    rec.data_hash = (validation.get("stats") or {}).get("data_hash")
    if decision is not None:
        vs = decision.comparisons[0] if decision.comparisons else None
        rows = {c.name: c for c in decision.cost_model}
        tuned_line = next((c for c in decision.cost_model if c.kind == "tuned"), None)
        base_line = rows.get(decision.best_baseline)
        rec = rec.model_copy(
            update={
                "decision": decision.decision,
                "headline": decision.headline,
                "gate": decision.gate,
                "data_hash": decision.provenance.get("data_hash", rec.data_hash),
                "best_baseline": decision.best_baseline,
                "delta": decision.delta,
                "ci_low": decision.ci_low,
                "ci_high": decision.ci_high,
                "mcnemar_p": vs.mcnemar_p if vs else None,
                "mde": vs.mde if vs else None,
                "cost": {
                    "train_usd": tuned_line.one_off_usd if tuned_line else None,
                    "train_seconds": tuned_line.one_off_seconds if tuned_line else None,
                    "tuned_per_1k_requests_usd": 1000 * tuned_line.per_request_usd if tuned_line else None,
                    "baseline_per_1k_requests_usd": 1000 * base_line.per_request_usd if base_line else None,
                    "tuned_monthly_usd": tuned_line.monthly_usd if tuned_line else None,
                    "break_even_requests": decision.break_even.requests if decision.break_even else None,
                    "break_even": decision.break_even.reason if decision.break_even else None,
                },
            }
        )
        rows = read_json(run_dir / "models.json")
        if rows:  # every rung and candidate with its CI, as the report shows them
            rec.metrics = {r["name"]: {k: r[k] for k in ("metric", "ci_low", "ci_high")} for r in rows}
    if deployment is not None:
        rec.deployed = deployment.model_dump(mode="json")
    evidence = {f"predictions/{f.name}": f for f in sorted((run_dir / "predictions").glob("*.jsonl"))}
    for name in (
        "decision.json",
        "models.json",
        "report.md",
        "report.html",
        "validation.json",
        "validation.md",
        "config.yaml",
        "deployment.json",
        "change.json",
    ):
        evidence[name] = run_dir / name
    return AuditLog(cfg.registry.path).append(rec, evidence)
