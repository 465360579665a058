"""The ``tunegate`` command line.

This is the one module of the package that reaches Prefect, and only inside
``tunegate run`` (imported lazily), so every other command works without it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import yaml

from tunegate.errors import TunegateError

EPILOG = """\
examples:
  tunegate run examples/quickstart/config.yaml
  tunegate run cfg.yaml --set method.epochs=2 --set gate.min_gain=0.02
  tunegate plan cfg.yaml --set method=auto --set budget.max_train_minutes=5
  tunegate compare cfg.yaml
  tunegate baselines cfg.yaml --set "baselines.retrieved_few_shot.retrievers=[bm25, dense, hybrid]"
  tunegate validate cfg.yaml
  tunegate predict --model sst2-sentiment@production "a gorgeous, moving film"
  tunegate retrain cfg.yaml            # champion/challenger: skips when the data did not change
  tunegate registry list
  tunegate registry promote sst2-sentiment@3 --reason "approved after review"
  tunegate registry rollback sst2-sentiment
  tunegate serve --model sst2-sentiment@production --port 8000
  tunegate audit --model quickstart-intents --since 2026-11-01
  tunegate audit show 20261121-101500-ab12cd
  tunegate audit verify 20261121-101500-ab12cd
"""


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise TunegateError(f"--set {item!r}: expected KEY=VALUE, e.g. --set method.epochs=2")
        key, _, value = item.partition("=")
        try:
            parsed = yaml.safe_load(value)  # "2" -> 2, "true" -> True, "[a, b]" -> list, "null" -> None
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, dict) and not value.lstrip().startswith("{"):
            parsed = value  # "Text: " is a string with a colon, not a mapping
        out[key.strip()] = parsed
    return out


def _load(args) -> Any:
    from tunegate.config import load_config
    from tunegate.modeling import check_model

    args.overrides = _parse_set(args.set)
    cfg = load_config(args.config, args.overrides)
    check_model(cfg.model, config_dir=cfg.config_dir)
    return cfg


def _run_flow(args, which: str) -> tuple[Any, Any, dict]:
    cfg = _load(args)  # config and model errors surface here, before Prefect starts
    from tunegate.prefect_env import configure

    configure()
    kwargs: dict[str, Any] = {}
    if which == "compare":
        from tunegate.flows.compare import compare as flow_fn
    elif which == "retrain":
        from tunegate.flows.retrain import retrain as flow_fn

        kwargs["force"] = bool(args.force)
    elif which == "baselines":
        from tunegate.flows.baselines import baselines as flow_fn
    else:
        from tunegate.flows.pipeline import pipeline as flow_fn

    state = flow_fn(config_path=str(args.config), overrides=args.overrides, return_state=True, **kwargs)
    data: dict = {}
    try:
        data = state.result(raise_on_failure=False) or {}
        data = data if isinstance(data, dict) else {}
    except Exception:  # the result of a crashed run may be unreadable; the message still says why
        data = {}
    print()
    return cfg, state, data


def _failed(state, data: dict, registry_note: bool = True) -> int:
    msg = state.message or "the run failed"
    print(f"ERROR: {msg}", file=sys.stderr)
    if data.get("run_dir"):
        print(f"Run folder: {data['run_dir']}", file=sys.stderr)
    if registry_note:
        print(
            "No model was registered and no alias moved; the failure is in the audit log (tunegate audit).",
            file=sys.stderr,
        )
    return 1


def cmd_run(args, which: str = "pipeline") -> int:
    cfg, state, data = _run_flow(args, which)
    if state.is_completed():
        if data.get("headline"):
            print(data["headline"] + "\n")
        print(state.message or "")
        if data.get("decision") is not None:  # a retrain that found no change has no report
            print(
                f"\nReport:     {Path(data.get('run_dir', '.')) / 'report.html'}  (and report.md, decision.json, "
                "predictions/)"
            )
        print(f"Registry:   {Path(cfg.registry.path).resolve()}  (tunegate registry list; tunegate audit)")
        return 0
    return _failed(state, data)


def cmd_retrain(args) -> int:
    return cmd_run(args, "retrain")


def cmd_compare(args) -> int:
    cfg, state, data = _run_flow(args, "compare")
    if state.is_completed():
        report = data.get("comparison")
        if report and Path(report).is_file():
            print(Path(report).read_text().split("\n## ")[0])  # the table, without the long sections
        print(state.message or "")
        print(f"\nRun folder: {data.get('run_dir')}  (compare.md, compare.json, compare.png, methods/<name>/)")
        return 0
    return _failed(state, data, registry_note=False)


def cmd_baselines(args) -> int:
    cfg, state, data = _run_flow(args, "baselines")
    if state.is_completed():
        report = data.get("ladder")
        if report and Path(report).is_file():
            print(Path(report).read_text())
        print(state.message or "")
        print(f"\nRun folder: {data.get('run_dir')}  (ladder.md, ladder.json, predictions/, indexes/)")
        return 0
    return _failed(state, data, registry_note=False)


def cmd_validate(args) -> int:
    from tunegate import stages

    cfg = _load(args)
    run = stages.prepare_run(cfg)
    result = stages.validate_data(cfg, run)
    print(Path(result.report_md).read_text())
    print(f"Report: {result.report_md} and {result.report_json}")
    if not result.ok:
        print(f"ERROR: {result.summary}", file=sys.stderr)
        return 1
    return 0


def cmd_plan(args) -> int:
    from tunegate import stages
    from tunegate.report import render_plan

    cfg = _load(args)
    run = stages.prepare_run(cfg)
    result = stages.validate_data(cfg, run)
    if not result.ok:
        print(f"ERROR: {result.summary} Report: {result.report_md}", file=sys.stderr)
        return 1
    print("Calibrating each method on a few real rows (about 10-30 s per method)...", file=sys.stderr)
    plan = stages.plan(cfg, run, result.dataset)
    print(render_plan(plan, cfg))
    print(f"Written: {Path(run.run_dir) / 'plan.md'} and plan.json")
    return 1 if plan.blocked else 0


def _registry_root(args) -> Path:
    if args.registry:
        return Path(args.registry)
    return Path(os.environ.get("TUNEGATE_REGISTRY", "registry"))


def cmd_predict(args) -> int:
    from tunegate.inference import load_predictor, predict

    texts = list(args.text)
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise TunegateError("predict: give at least one TEXT (or '-' to read lines from standard input)")
    predictor = load_predictor(_registry_root(args), args.model)
    results = predict(predictor, texts)
    v = predictor.version
    if args.json:
        for r in results:
            print(json.dumps({"model": f"{v.name}@v{v.version}", **r}))
        return 0
    print(f"# {v.name} v{v.version} ({', '.join(v.aliases) or 'no alias'}), method {predictor.meta['method']}")
    for r in results:
        if "label" in r:
            probs = "  ".join(f"{k}={p:.2f}" for k, p in sorted(r["probabilities"].items(), key=lambda kv: -kv[1])[:3])
            print(f"{r['label']:<20} {r['input'][:60]!r}  ({probs})")
        elif "value" in r:
            value = "no number" if r["value"] is None else f"{r['value']:.4g}"
            print(f"{value:<12} {r['input'][:60]!r}")
        else:
            print(f"{r['input'][:60]!r} -> {r['output']}")
    return 0


def cmd_registry_list(args) -> int:
    from tunegate.registry import Registry

    reg = Registry(_registry_root(args))
    rows = reg.list()
    if args.json:
        print(
            json.dumps(
                [{"name": r.name, "version": r.version, "aliases": list(r.aliases), **r.meta} for r in rows],
                indent=2,
                default=str,
            )
        )
        return 0
    if not rows:
        print(f"registry {reg.root.resolve()} is empty (a `tunegate run` adds versions)")
        return 0
    print(
        f"{'model':<24} {'ver':>4} {'aliases':<12} {'decision':<9} {'metric':<14} {'delta [CI]':<26} {'method':<8} run"
    )
    for r in rows:
        m = r.meta
        metric = f"{m.get('gate_metric', '?')}={m.get('metric', float('nan')):.3f}"
        ci = f"{m.get('delta', 0):+.3f} [{m.get('ci_low', 0):+.3f},{m.get('ci_high', 0):+.3f}]"
        print(
            f"{r.name:<24} {'v' + str(r.version):>4} {','.join(r.aliases) or '-':<12} {m.get('decision', '?'):<9} "
            f"{metric:<14} {ci:<26} {m.get('method', '?'):<8} {m.get('run_id', '')}"
        )
    return 0


def cmd_registry_show(args) -> int:
    from tunegate.registry import Registry

    info = Registry(_registry_root(args)).resolve(args.model)
    print(json.dumps({"path": str(info.path), "aliases": list(info.aliases), **info.meta}, indent=2, default=str))
    card = info.path / "model_card.md"
    if card.is_file():
        print(f"\nModel card: {card}")
    return 0


def cmd_registry_promote(args) -> int:
    from tunegate import promotion
    from tunegate.registry import Registry

    reg = Registry(_registry_root(args))
    name, _, sel = args.model.partition("@")
    if not sel:
        raise TunegateError(
            f"registry promote: name the version, e.g. {name}@3 (aliases: tunegate registry show {name})"
        )
    info = reg.resolve(args.model)
    if info.meta.get("decision") == "reject" and not args.force:
        why = ""
        if (info.path / "decision.json").is_file():
            why = f": {json.loads((info.path / 'decision.json').read_text()).get('summary', '')}"
        raise TunegateError(
            f"{name} v{info.version} was rejected by the gate in run {info.meta.get('run_id')}{why}. "
            f"Pass --force to promote it anyway (it is still re-scored)"
        )
    if not args.no_rescore:
        print(f"re-scoring {name} v{info.version} from the registry on its eval rows...", file=sys.stderr)
    result = promotion.promote(
        reg,
        name,
        info.version,
        alias=args.alias,
        tolerance=args.tolerance,
        check=not args.no_rescore,
        reason=args.reason or "",
    )
    if result.rescore is not None:
        print(result.rescore.note)
    if not result.moved:
        print(f"ERROR: {result.message}", file=sys.stderr)
        return 1
    promotion.audit_alias_move(reg, name, result, action="promote", alias=args.alias, reason=args.reason or "")
    print(result.message + ("  (re-score skipped: --no-rescore)" if args.no_rescore else ""))
    return 0


def cmd_registry_rollback(args) -> int:
    from tunegate import promotion
    from tunegate.registry import Registry

    reg = Registry(_registry_root(args))
    reg.resolve(args.name)  # a clear error for an unknown model
    result = promotion.rollback(reg, args.name, alias=args.alias, to=args.to, reason=args.reason or "")
    promotion.audit_alias_move(reg, args.name, result, action="rollback", alias=args.alias, reason=args.reason or "")
    print(result.message)
    return 0


def cmd_registry_history(args) -> int:
    from tunegate.registry import Registry

    reg = Registry(_registry_root(args))
    name = args.name.partition("@")[0]
    if name not in reg.models():
        raise TunegateError(f"no model '{name}' in registry {reg.root} (models: {', '.join(reg.models()) or 'none'})")
    hist = reg.history(name, args.alias)
    if args.json:
        print(json.dumps(hist, indent=2))
        return 0
    if not hist:
        print(f"{name}: no alias has been set yet")
        return 0
    print(f"{'time':<25} {'alias':<11} {'move':<10} {'action':<9} {'by':<8} reason / re-score")
    for h in hist:
        move = f"{'v' + str(h['from']) if h.get('from') is not None else '-'} -> v{h['to']}"
        rs = h.get("rescore")
        why = h.get("reason") or ""
        if isinstance(rs, dict):
            value, expected = rs.get("value") or float("nan"), rs.get("expected") or float("nan")
            why += f"  [re-score {rs['metric']} {value:.4f} vs {expected:.4f}]"
        elif rs == "skipped":
            why += "  [re-score skipped]"
        print(
            f"{h['at']:<25} {h['alias']:<11} {move:<10} {h.get('action', 'set'):<9} {h.get('by', '?')[:8]:<8} "
            f"{why[:110]}"
        )
    return 0


def cmd_serve(args) -> int:
    from tunegate.serving import serve

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"WARNING: serving on {args.host}: there is no authentication; put it behind a proxy that adds it",
            file=sys.stderr,
        )
    serve(_registry_root(args), args.model, host=args.host, port=args.port, watch_seconds=args.watch_seconds)
    return 0


def _audit_log(args):
    from tunegate.audit import AuditLog

    return AuditLog(_registry_root(args))


def _fmt(x, spec: str = ".3f", none: str = "-") -> str:
    return none if x is None else format(x, spec)


def cmd_audit_list(args) -> int:
    log = _audit_log(args)
    records = log.records(model=args.model, since=args.since, until=args.until)
    if args.json:
        print(json.dumps([r.model_dump(mode="json") for r in records], indent=2))
        return 0
    if not records:
        filters = [f"{k}={v}" for k, v in [("model", args.model), ("since", args.since), ("until", args.until)] if v]
        where = f" matching {', '.join(filters)}" if filters else ""
        print(f"no audit records{where} in {log.path.resolve()} (every `tunegate run` appends one)")
        return 0
    head = (
        f"{'time':<16} {'run':<30} {'model':<20} {'trigger':<11} {'method':<13} {'outcome':<9} "
        f"{'tuned vs best baseline':<40} "
        f"{'delta [CI]':<24} {'train $':>8} {'$/1K req tuned|base':>20} deployed"
    )
    print(head)
    for r in records:
        delta = train = per = ""
        if r.status == "failed":
            outcome, versus = "FAILED", f"at {r.failed_stage}: {(r.error or '')[:30]}"
        elif r.status == "skipped":
            outcome, versus = "no change", (r.headline or "")[:40]
        elif r.status in ("promote", "rollback"):
            outcome, versus = r.status, f"by hand: {r.headline or ''}"[:40]
        else:
            tuned = r.metrics.get(f"tuned:{r.method}", {}).get("metric")
            base = r.metrics.get(r.best_baseline or "", {}).get("metric")
            outcome = "promoted" if r.decision == "promote" else "rejected"
            versus = f"{r.gate_metric} {_fmt(tuned)} vs {_fmt(base)} {r.best_baseline}"[:40]
            delta = f"{_fmt(r.delta, '+.3f')} [{_fmt(r.ci_low, '+.3f')},{_fmt(r.ci_high, '+.3f')}]"
            train = _fmt(r.cost.get("train_usd"), ".4f")
            tuned_1k, base_1k = r.cost.get("tuned_per_1k_requests_usd"), r.cost.get("baseline_per_1k_requests_usd")
            per = f"{_fmt(tuned_1k, '.4f')}|{_fmt(base_1k, '.4f')}"
        d = r.deployed or {}
        if r.status in ("promote", "rollback"):
            deployed = f"{d.get('alias')}: v{d.get('from')} -> v{d.get('to')}"
        elif d.get("registered_version") is not None:
            where = (
                " -> production"
                if d.get("production_moved")
                else f" (production v{d['production_version']})"
                if d.get("production_version")
                else " (no production)"
            )
            deployed = f"v{d['registered_version']}{where}"
        else:
            deployed = "-"
        trigger = (r.trigger or "-").split(" ")[0]
        print(
            f"{r.time[:16].replace('T', ' '):<16} {r.run_id:<30} {r.model_name[:20]:<20} {trigger[:11]:<11} "
            f"{(r.method or '-')[:13]:<13} "
            f"{outcome:<9} {versus:<40} {delta:<24} {train:>8} {per:>20} {deployed}"
        )
    print(f"\n{len(records)} run(s); log: {log.path.resolve()}  (tunegate audit show RUN; tunegate audit verify RUN)")
    return 0


def cmd_audit_show(args) -> int:
    rec = _audit_log(args).get(args.run)
    if args.json:
        print(json.dumps(rec.model_dump(mode="json"), indent=2))
        return 0
    print(f"# run {rec.run_id} ({rec.status}), {rec.time}")
    if rec.headline:
        print(f"\n{rec.headline}\n")
    if rec.status == "failed":
        print(f"failed at: {rec.failed_stage}\nerror: {rec.error}\n")
    fields = [
        ("model", rec.model_name),
        ("method", rec.method),
        ("task", rec.task),
        ("base model", rec.base_model),
        ("data hash", rec.data_hash),
        ("config hash", rec.config_hash),
        ("code version", rec.code_version),
        ("gate", json.dumps(rec.gate) if rec.gate else None),
        ("decision", rec.decision),
        (
            "delta vs best baseline",
            f"{_fmt(rec.delta, '+.4f')} CI [{_fmt(rec.ci_low, '+.4f')}, {_fmt(rec.ci_high, '+.4f')}]"
            if rec.delta is not None
            else None,
        ),
        ("McNemar p", _fmt(rec.mcnemar_p, ".4g", "-")),
        ("min. detectable difference", _fmt(rec.mde, ".4f")),
        ("deployed", json.dumps(rec.deployed) if rec.deployed else None),
    ]
    for k, v in fields:
        if v is not None:
            print(f"{k + ':':<28} {v}")
    if rec.metrics:
        print("\nmetric [CI] per model:")
        for name, m in rec.metrics.items():
            print(f"  {name:<40} {m['metric']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]")
    if rec.cost:
        print("\ncost:")
        for k, v in rec.cost.items():
            print(f"  {k:<30} {v}")
    ev = Path(rec.evidence_dir) if rec.evidence_dir else None
    if ev is not None and (ev / "report.html").is_file():
        print(f"\nReport: {ev / 'report.html'}  (copy kept in the registry; run folder: {rec.run_dir})")
    elif rec.run_dir:
        print(f"\nRun folder: {rec.run_dir}")
    return 0


def cmd_audit_verify(args) -> int:
    from tunegate.audit import verify

    result = verify(_audit_log(args), args.run)
    for name, ok, detail in result.checks:
        print(f"[{'ok' if ok else 'MISMATCH'}] {name}" + (f": {detail}" if detail else ""))
    if result.ok:
        print(
            f"\nverified: run {result.run_id}'s recorded decision follows from its stored predictions and its recorded "
            "gate"
        )
        return 0
    print(f"\nVERIFICATION FAILED for run {result.run_id}: the record does not match its evidence", file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tunegate",
        description="Should we fine-tune this LLM, and did it pay off? Validate data, measure no-tuning baselines, "
        "tune, compare on the same held-out rows, and promote only a model that wins.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log more (library debug messages)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def with_registry(sp):
        sp.add_argument("--registry", metavar="PATH", help="registry root (default: $TUNEGATE_REGISTRY or ./registry)")

    def with_config(sp):
        sp.add_argument("config", type=Path, metavar="CONFIG", help="YAML config (see examples/quickstart/config.yaml)")
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value by dotted key, e.g. --set method.epochs=2 (repeatable)",
        )

    r = sub.add_parser(
        "run",
        help="run the whole pipeline (a Prefect flow)",
        description="Run the whole pipeline as one Prefect flow: validate data, evaluate baselines (cached), tune, "
        "evaluate the tuned model, compare with a paired bootstrap CI, and register/promote. Prefect runs embedded "
        "unless PREFECT_API_URL points at a server. Exit code 0 when the run completed (promoted or not), 1 when "
        "it failed (e.g. bad data), 2 for config errors.",
    )
    with_config(r)
    r.set_defaults(func=cmd_run)

    rt = sub.add_parser(
        "retrain",
        help="champion/challenger retraining: skip when nothing changed, else tune and promote only over baselines AND "
        "production",
        description="Run the retrain flow (what the scheduled deployments run): re-read and validate the data; if its "
        "data "
        "hash and the config equal those of the newest registered version, stop and record 'no change' in the audit "
        "log; "
        "otherwise tune a challenger and promote it only if the gate finds it better than the best baseline and the "
        "current "
        "production model on the same eval rows. Exit code 0 when the run completed (retrained or not).",
    )
    with_config(rt)
    rt.add_argument("--force", action="store_true", help="retrain even if the data did not change")
    rt.set_defaults(func=cmd_retrain)

    c = sub.add_parser(
        "compare",
        help="run every applicable method on the same data and print the measured trade-off table",
        description="Run the baselines once, then every method listed under `compare` in the config (default: every "
        "method that applies to the task) on the same train and eval rows, each as its own Prefect tasks. Writes "
        "compare.md (table: metric with CI, delta vs the best baseline with CI, trainable params, peak memory, train "
        "time vs the plan's estimate, artifact size, latency, the gate's decision) and a bar chart. A method that "
        "fails is reported in the table; the others still run. Nothing is registered.",
    )
    with_config(c)
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser(
        "baselines",
        help="measure the baseline ladder only (zero-shot, calibrated, few-shot, retrieved few-shot, RAG)",
        description="Measure what you get without tuning, on the eval rows: zero-shot; zero-shot with the label prior "
        "calibrated (classification); few-shot with fixed random demonstrations; few-shot with the most similar train "
        "rows retrieved per input (bm25, dense or hybrid: baselines.retrieved_few_shot.retrievers); RAG over "
        "baselines.rag.documents. Writes ladder.md/.json (metric with CI, prompt tokens, retrieval and total latency, "
        "index build time and size) and saves the indexes with the run. Nothing is trained or registered.",
    )
    with_config(b)
    b.set_defaults(func=cmd_baselines)

    pl_ = sub.add_parser(
        "plan",
        help="estimate time, memory and cost of each method before anything trains",
        description="Validate the data, then run a short calibration of the configured method (every applicable "
        "method for `method: auto`) on this machine and print, per method: trainable parameters, estimated peak "
        "memory, estimated training time on the detected hardware, estimated cost at costs.cpu_per_hour (gpu_per_hour "
        "on CUDA), and "
        "whether it fits the budget caps. For `method: auto`, also which method the advisor picks and why. "
        "Exit code 1 when over budget (a `tunegate run` would stop before training).",
    )
    with_config(pl_)
    pl_.set_defaults(func=cmd_plan)

    v = sub.add_parser(
        "validate",
        help="check the data only (no Prefect, no training)",
        description="Run every data check of the pipeline and print the report (written to the run folder too). "
        "Exit code 1 if any check failed.",
    )
    with_config(v)
    v.set_defaults(func=cmd_validate)

    pr = sub.add_parser(
        "predict",
        help="answer inputs with a registered model",
        description="Load a model from the registry (base model + adapter) and answer each TEXT. Classification "
        "prints the label and its probability among the labels; generation prints the output.",
    )
    pr.add_argument(
        "--model", required=True, metavar="NAME[@ALIAS|VERSION]", help="e.g. intents, intents@production, intents@3"
    )
    with_registry(pr)
    pr.add_argument("--json", action="store_true", help="one JSON object per input")
    pr.add_argument("text", nargs="+", metavar="TEXT", help="input text(s); '-' reads one per line from stdin")
    pr.set_defaults(func=cmd_predict)

    reg = sub.add_parser(
        "registry",
        help="inspect the model registry; promote or roll back a version",
        description="The versioned model registry: list, show, promote, rollback, history.",
    )
    rsub = reg.add_subparsers(dest="registry_command", metavar="SUBCOMMAND")
    rsub.required = True
    rl = rsub.add_parser("list", help="every version with its aliases, decision and gate metric")
    with_registry(rl)
    rl.add_argument("--json", action="store_true", help="machine-readable output")
    rl.set_defaults(func=cmd_registry_list)
    rs = rsub.add_parser("show", help="one version's metadata")
    rs.add_argument("model", metavar="NAME[@ALIAS|VERSION]")
    with_registry(rs)
    rs.set_defaults(func=cmd_registry_show)
    rp = rsub.add_parser(
        "promote",
        help="move an alias (production by default) to a version, after re-scoring it from the registry",
        description="Load the version back from the registry (files checked against their sha256 manifest), score it "
        "on the "
        "eval rows it was judged on, and move the alias only if its metric reproduces the run's within the tolerance. "
        "The move is atomic, recorded in the alias history and the audit log. A version the gate rejected needs "
        "--force.",
    )
    rp.add_argument("model", metavar="NAME@VERSION", help="e.g. intents@3")
    rp.add_argument(
        "--alias", default="production", help="alias to move (default: production; any name works, e.g. staging)"
    )
    rp.add_argument("--reason", help="why (kept in the alias history and the audit log)")
    rp.add_argument("--force", action="store_true", help="promote a version the gate rejected")
    rp.add_argument("--no-rescore", action="store_true", help="skip the re-score (files are still checked)")
    rp.add_argument(
        "--tolerance",
        type=float,
        help="largest accepted |metric difference| (default: registry.reproduce_tolerance of the version's run)",
    )
    with_registry(rp)
    rp.set_defaults(func=cmd_registry_promote)
    rb = rsub.add_parser(
        "rollback",
        help="move an alias back to the version it pointed at before",
        description="Move the alias (production by default) back to its previous version (repeat to go further back), "
        "or to --to VERSION. Atomic; recorded in the alias history and the audit log. A running `tunegate serve` picks "
        "it up on its next alias check or on POST /admin/reload.",
    )
    rb.add_argument("name", metavar="NAME")
    rb.add_argument("--alias", default="production", help="alias to move back (default: production)")
    rb.add_argument("--to", type=int, metavar="VERSION", help="roll back to this version instead of the previous one")
    rb.add_argument("--reason", help="why (kept in the alias history and the audit log)")
    with_registry(rb)
    rb.set_defaults(func=cmd_registry_rollback)
    rh = rsub.add_parser("history", help="every alias move of a model: when, from, to, by whom, why, re-score")
    rh.add_argument("name", metavar="NAME")
    rh.add_argument("--alias", help="only this alias")
    rh.add_argument("--json", action="store_true", help="machine-readable output")
    with_registry(rh)
    rh.set_defaults(func=cmd_registry_history)

    sv = sub.add_parser(
        "serve",
        help="serve a registered model over HTTP (FastAPI + uvicorn)",
        description='Serve NAME@ALIAS over HTTP: GET /health; POST /v1/predict {"text": ...} or {"texts": [...]} '
        '(classification: label + probabilities; regression: value); POST /v1/completions {"prompt": ..., '
        '"max_tokens": 64} (generation); POST /admin/reload. The base model is read once; when the alias moves '
        "(checked every --watch-seconds) or on /admin/reload the new version is loaded beside the current one and "
        "swapped in without dropping requests. Binds 127.0.0.1 unless told otherwise (no authentication).",
    )
    sv.add_argument(
        "--model",
        required=True,
        metavar="NAME[@ALIAS|VERSION]",
        help="e.g. intents@production (a bare name means production)",
    )
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument(
        "--watch-seconds",
        type=float,
        default=5.0,
        help="check the alias this often and reload when it moved (0: only on /admin/reload)",
    )
    with_registry(sv)
    sv.set_defaults(func=cmd_serve)

    def audit_filters(sp):
        sp.add_argument("--model", metavar="NAME", help="only runs of this registered model name")
        sp.add_argument("--since", metavar="YYYY-MM-DD", help="only runs on or after this date")
        sp.add_argument("--until", metavar="YYYY-MM-DD", help="only runs on or before this date")
        sp.add_argument("--json", action="store_true", help="the records as JSON")
        with_registry(sp)

    au = sub.add_parser(
        "audit",
        help="the history of runs: did tuning beat the baseline, by how much, at what cost, what was deployed",
        description="Read the registry's append-only audit log (one record per `tunegate run`, promoted or not, failed "
        "or not). Without a subcommand: list the runs as a table.",
    )
    audit_filters(au)
    au.set_defaults(func=cmd_audit_list)
    asub = au.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    al = asub.add_parser("list", help="the runs as a table (the default)")
    audit_filters(al)
    al.set_defaults(func=cmd_audit_list)
    ash = asub.add_parser("show", help="one run's record and its report path")
    ash.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    ash.add_argument("--json", action="store_true", help="the record as JSON")
    with_registry(ash)
    ash.set_defaults(func=cmd_audit_show)
    av = asub.add_parser(
        "verify",
        help="recompute a run's decision from its stored predictions and recorded gate",
        description="Check the log's hash chain and the run's evidence hashes, recompute every model's metric from the "
        "stored per-example predictions, re-run the recorded gate and compare with the recorded decision, delta, CI "
        "and McNemar p. Exit code 1 on any mismatch.",
    )
    av.add_argument("run", metavar="RUN", help="run id (a unique prefix is enough)")
    with_registry(av)
    av.set_defaults(func=cmd_audit_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # only our own logger gets a handler: Prefect configures its own console logging
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s", "%H:%M:%S"))
    lib_log = logging.getLogger("tunegate")
    lib_log.addHandler(handler)
    lib_log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tunegate.errors import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except TunegateError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
