"""`tunegate predict` and `tunegate serve`: answering with a registered model."""

from __future__ import annotations

import json
import sys

from tunegate.cli.common import registry_root, with_registry
from tunegate.errors import TunegateError


def add_commands(sub) -> None:
    """Register this group's subcommands on the top-level parser's ``sub``."""
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

    _add_serve_command(sub)

    _add_shadow_commands(sub)


def _add_serve_command(sub) -> None:
    """`tunegate serve`."""
    sv = sub.add_parser(
        "serve",
        help="serve registered models over HTTP (FastAPI + uvicorn; OpenAI-compatible)",
        description="Serve one or more NAME@ALIAS over HTTP: GET /health; GET /v1/models; POST /v1/predict "
        '{"model": ..., "text": ...} or {"texts": [...]} (classification: label + probabilities; regression: '
        "value); POST /v1/completions and /v1/chat/completions (OpenAI-compatible: model, messages, max_tokens, "
        "temperature, stop, stream); POST /v1/feedback {id, label|reference}; POST /admin/reload. A request names its "
        "model (an id of GET /v1/models); "
        "none: the first --model. Versions of one base model share one copy of its weights (LoRA adapters are "
        "applied per request). When an alias moves (checked every --watch-seconds) or on /admin/reload the new "
        "version is loaded beside the current one and swapped in without dropping requests. Binds 127.0.0.1 "
        "unless told otherwise (no authentication). Every answered input is logged beside the registry "
        "(registry/_traffic/NAME/; the serve: config section: log_inputs, rollback_if); --shadow and --canary put a "
        "challenger on live traffic; `tunegate shadow report NAME` compares them.",
    )
    sv.add_argument(
        "--model",
        required=True,
        action="append",
        metavar="NAME[@ALIAS|VERSION]",
        help="a model to serve, e.g. intents@production (a bare name means production); repeat for several",
    )
    sv.add_argument(
        "--shadow",
        action="append",
        default=[],
        metavar="NAME@REF",
        help="score this version on every request to NAME@production too (logged, never returned; NAME@production "
        "must be a --model)",
    )
    sv.add_argument(
        "--canary",
        action="append",
        default=[],
        metavar="NAME@REF:SHARE",
        help="answer SHARE (0-1) of the requests to NAME@production with this version, e.g. sst2@4:0.1",
    )
    sv.add_argument(
        "--config",
        metavar="CONFIG",
        help="read the serve: section (request log, log_inputs, rollback_if) from this config instead of the one "
        "recorded with the first --model",
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


def _add_shadow_commands(sub) -> None:
    """`tunegate shadow report`."""
    sh = sub.add_parser(
        "shadow",
        help="live traffic: champion vs shadow/canary on logged requests, feedback, drift",
        description="Read the request log `tunegate serve` writes (and the feedback sent to POST /v1/feedback).",
    )
    shsub = sh.add_subparsers(dest="shadow_command", metavar="SUBCOMMAND")
    shsub.required = True
    rp = shsub.add_parser(
        "report",
        help="agreement, paired statistics with an always-valid test, live metrics, drift",
        description="For model NAME: each version's requests and live metric on the requests with feedback; for "
        "each champion and shadow, how often they agree and, on requests with feedback, the paired difference with "
        "an always-valid confidence sequence (it may be checked after every feedback), the paired bootstrap and "
        "McNemar, and a verdict; the drift of the served inputs against the production version's eval rows. "
        "Writes shadow_report.md/.json beside the log.",
    )
    rp.add_argument("name", metavar="NAME", help="registered model name")
    rp.add_argument("--log-dir", help="the request logs' root if serve.log_dir was set (default <registry>/_traffic)")
    rp.add_argument("--alpha", type=float, default=0.05, help="error rate of the sequential test (default 0.05)")
    rp.add_argument("--min-feedback", type=int, default=30, help="no verdict on fewer requests with feedback")
    rp.add_argument(
        "--drift-threshold", type=float, default=None, help="drift score that flags drift (default: serve config's)"
    )
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    with_registry(rp)
    rp.set_defaults(func=cmd_shadow_report)


def cmd_predict(args) -> int:
    from tunegate.inference import load_predictor, predict

    texts = list(args.text)
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise TunegateError("predict: give at least one TEXT (or '-' to read lines from standard input)")
    blank = [i for i, t in enumerate(texts, 1) if not t.strip()]
    if blank:  # training refuses such rows: an answer to nothing would be a guess
        raise TunegateError(
            f"predict: TEXT {', '.join(map(str, blank))} of {len(texts)} is empty or only whitespace; give the text "
            "to answer"
        )
    predictor = load_predictor(registry_root(args), args.model)
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


def check_port(host: str, port: int) -> None:
    """A port out of range, or one another process holds: one message now, not after loading the model."""
    import socket

    if not 0 <= port <= 65535:
        raise TunegateError(f"--port {port} is out of range: use a port in 1-65535 (e.g. 8000; 0: any free port)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE
                raise TunegateError(
                    f"port {port} on {host} is already in use (another server?); stop it or pick another --port"
                ) from None
            raise TunegateError(
                f"cannot listen on {host}:{port} ({exc.strerror}); pick another --host or --port"
            ) from None


def cmd_serve(args) -> int:
    from tunegate.serving import serve

    check_port(args.host, args.port)  # before the registry lookup and the model load
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"WARNING: serving on {args.host}: there is no authentication; put it behind a proxy that adds it",
            file=sys.stderr,
        )
    serve(
        registry_root(args),
        args.model,
        host=args.host,
        port=args.port,
        watch_seconds=args.watch_seconds,
        shadows=args.shadow,
        canaries=args.canary,
        config=args.config,
    )
    return 0


def cmd_shadow_report(args) -> int:
    from tunegate.registry import Registry, atomic_write_text
    from tunegate.serving.live import serve_settings
    from tunegate.traffic.log import traffic_dir
    from tunegate.traffic.shadow import render, shadow_report

    root = registry_root(args)
    models = Registry(root).models()
    if args.name not in models:  # a model without production is fine: its logged versions are reported
        raise TunegateError(f"no model '{args.name}' in registry {root} (models: {', '.join(models) or 'none'})")
    threshold = args.drift_threshold
    if threshold is None:
        threshold = serve_settings(root, args.name, None).drift_threshold
    report = shadow_report(
        root, args.name, log_dir=args.log_dir, alpha=args.alpha, min_feedback=args.min_feedback,
        drift_threshold=threshold,
    )  # fmt: skip
    text = render(report)
    folder = traffic_dir(root, args.name, args.log_dir)
    if folder.exists():
        atomic_write_text(folder / "shadow_report.md", text)
        atomic_write_text(folder / "shadow_report.json", json.dumps(report, indent=1, default=str))
    print(json.dumps(report, indent=1, default=str) if args.json else text)
    return 0
