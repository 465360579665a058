"""`tunegate registry list | show | promote | rollback | history`: the versioned model registry."""

from __future__ import annotations

import json
import sys

from tunegate.cli.common import registry_root, with_registry
from tunegate.errors import TunegateError


def add_commands(sub) -> None:
    """Register this group's subcommands on the top-level parser's ``sub``."""
    _add_export_command(sub)
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
        "on the eval rows it was judged on, and move the alias only if its metric reproduces the run's within the "
        "tolerance. The move is atomic, recorded in the alias history and the audit log. A version the gate "
        "rejected needs --force.",
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


def _add_export_command(sub) -> None:
    ex = sub.add_parser(
        "export",
        help="a registered version as peft, merged (transformers/vLLM) or gguf (llama.cpp), re-scored",
        description="Write NAME@VERSION in a format other engines load: peft (the adapter, tokenizer, chat template, "
        "prompt and a loader; the probe's head; prompt tuning's soft prompt), merged (LoRA merged into the base, "
        "safetensors: transformers and vLLM), gguf (the merged weights in the base model's GGUF layout, float32: "
        "llama.cpp, Ollama). The export is loaded back as those engines would and re-scored on the version's eval "
        "rows; unless it reproduces the version's metric (registry.reproduce_tolerance) nothing is written. "
        "Exit 1 (with the reason) otherwise.",
    )
    ex.add_argument("ref", metavar="NAME@VERSION", help="e.g. sst2-sentiment@3 or sst2-sentiment@production")
    ex.add_argument("--format", required=True, choices=("peft", "merged", "gguf"), help="the export format")
    ex.add_argument("--out", required=True, metavar="DIR", help="the folder to write (must not exist unless --force)")
    ex.add_argument("--force", action="store_true", help="replace --out if it exists")
    with_registry(ex)
    ex.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from tunegate.export import export

    result = export(registry_root(args), args.ref, args.format, args.out, force=args.force)
    r = result.rescore
    print(f"exported {r['version']} as {result.format} to {result.out} ({len(result.files)} files)")
    print(f"  {r['note']}")
    return 0


def cmd_registry_list(args) -> int:
    from tunegate.registry import Registry

    reg = Registry(registry_root(args))
    if not reg.root.exists():  # a mistyped --registry is not an empty registry
        raise TunegateError(
            f"no registry at {reg.root.resolve()}: the folder does not exist. Check --registry (or "
            "TUNEGATE_REGISTRY, registry.path); a `tunegate run` creates it when it registers its first version"
        )
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

    info = Registry(registry_root(args)).resolve(args.model)
    print(json.dumps({"path": str(info.path), "aliases": list(info.aliases), **info.meta}, indent=2, default=str))
    card = info.path / "model_card.md"
    if card.is_file():
        print(f"\nModel card: {card}")
    return 0


def cmd_registry_promote(args) -> int:
    from tunegate import promotion
    from tunegate.registry import Registry, check_alias

    check_alias(args.alias)
    reg = Registry(registry_root(args))
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
    from tunegate.registry import Registry, check_alias

    check_alias(args.alias)
    reg = Registry(registry_root(args))
    reg.resolve(args.name)  # a clear error for an unknown model
    result = promotion.rollback(reg, args.name, alias=args.alias, to=args.to, reason=args.reason or "")
    promotion.audit_alias_move(reg, args.name, result, action="rollback", alias=args.alias, reason=args.reason or "")
    print(result.message)
    return 0


def cmd_registry_history(args) -> int:
    from tunegate.registry import Registry

    reg = Registry(registry_root(args))
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
