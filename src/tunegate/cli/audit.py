"""`tunegate audit [list] | show | verify`: the history of runs from the registry's audit log."""

from __future__ import annotations

import json
import sys

from tunegate.cli.common import fmt, registry_root, with_registry
from tunegate.errors import TunegateError


def add_commands(sub) -> None:
    """Register this group's subcommands on the top-level parser's ``sub``."""

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


def _audit_log(args):
    from tunegate.audit import AuditLog

    return AuditLog(registry_root(args))


def _day(option: str, value: str | None) -> str | None:
    """A --since/--until value as YYYY-MM-DD (a real date), else one clear error."""
    import datetime as dt

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        today = dt.date.today().isoformat()
        raise TunegateError(f"{option} {value!r}: give a date as YYYY-MM-DD, e.g. {option} {today}") from None


def cmd_audit_list(args) -> int:
    args.since, args.until = _day("--since", args.since), _day("--until", args.until)
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
        f"{'tuned vs best baseline':<40} {'delta [CI]':<24} {'train $':>8} {'$/1K req tuned|base':>20} deployed"
    )
    print(head)
    for r in records:
        delta = train = per = ""
        if r.status in ("failed", "cancelled"):
            outcome, versus = r.status.upper(), f"at {r.failed_stage}: {(r.error or '')[:30]}"
        elif r.status == "skipped":
            outcome, versus = "no change", (r.headline or "")[:40]
        elif r.status in ("promote", "rollback"):
            how = "by hand" if (r.trigger or "manual").startswith("manual") else "automatic"
            outcome, versus = r.status, f"{how}: {r.headline or ''}"[:40]
        else:
            tuned = r.metrics.get(f"tuned:{r.method}", {}).get("metric")
            base = r.metrics.get(r.best_baseline or "", {}).get("metric")
            outcome = "promoted" if r.decision == "promote" else "rejected"
            versus = f"{r.gate_metric} {fmt(tuned)} vs {fmt(base)} {r.best_baseline}"[:40]
            delta = f"{fmt(r.delta, '+.3f')} [{fmt(r.ci_low, '+.3f')},{fmt(r.ci_high, '+.3f')}]"
            train = fmt(r.cost.get("train_usd"), ".4f")
            tuned_1k, base_1k = r.cost.get("tuned_per_1k_requests_usd"), r.cost.get("baseline_per_1k_requests_usd")
            per = f"{fmt(tuned_1k, '.4f')}|{fmt(base_1k, '.4f')}"
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
            f"{(r.method or '-')[:13]:<13} {outcome:<9} {versus:<40} {delta:<24} {train:>8} {per:>20} {deployed}"
        )
    print(f"\n{len(records)} run(s); log: {log.path.resolve()}  (tunegate audit show RUN; tunegate audit verify RUN)")
    return 0


def cmd_audit_show(args) -> int:
    log = _audit_log(args)
    rec = log.get(args.run)
    breaks = log.chain_breaks()
    if breaks:  # an edited record is shown, but never as if it were the one written
        print(
            f"WARNING: the audit log does not verify ({'; '.join(breaks)}): this record may have been edited "
            f"after it was written (`tunegate audit verify {rec.run_id}` checks it against its evidence)",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(rec.model_dump(mode="json"), indent=2))
        return 0
    print(f"# run {rec.run_id} ({rec.status}), {rec.time}")
    if rec.headline:
        print(f"\n{rec.headline}\n")
    if rec.status in ("failed", "cancelled"):
        print(f"{rec.status} at: {rec.failed_stage}\nerror: {rec.error}\n")
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
            f"{fmt(rec.delta, '+.4f')} CI [{fmt(rec.ci_low, '+.4f')}, {fmt(rec.ci_high, '+.4f')}]"
            if rec.delta is not None
            else None,
        ),
        ("McNemar p", fmt(rec.mcnemar_p, ".4g", "-")),
        ("min. detectable difference", fmt(rec.mde, ".4f")),
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
    if rec.guards:
        print("\nguards (what tuning may break):")
        for k, v in rec.guards.items():
            print(f"  {k:<30} {v}")
    ev = log.evidence_path(rec)
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
