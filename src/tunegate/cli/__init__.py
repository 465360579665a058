"""The ``tunegate`` command line: one module per command group, each parser beside its handler.

Only ``tunegate run`` and its siblings reach Prefect (imported lazily, inside the
handler), so every other command works without it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from tunegate.cli import audit, registry, runs, serve
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

    for group in (runs, serve, registry, audit):
        group.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # only our own logger gets a handler: Prefect configures its own console logging
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s", "%H:%M:%S"))
    if sys.stderr.isatty():  # the progress bars are on the terminal already; their log lines are for files/Prefect
        from tunegate.progress import is_progress_record

        handler.addFilter(lambda record: not is_progress_record(record))
    lib_log = logging.getLogger("tunegate")
    for old in [h for h in lib_log.handlers if getattr(h, "tunegate_cli", False)]:
        lib_log.removeHandler(old)  # main() called again in one process (tests, notebooks): one handler, today's stderr
    handler.tunegate_cli = True
    lib_log.addHandler(handler)
    lib_log.propagate = False  # Prefect's root console handler would print every line a second time
    lib_log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tunegate.errors import ConfigError
    from tunegate.modeling import quiet_offline_kernel_fetch

    quiet_offline_kernel_fetch()

    restore = stop_on_sigterm()
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except TunegateError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code not in STOP_CODES:
            raise
        code = 130 if isinstance(exc, KeyboardInterrupt) else int(exc.code)
        print(f"\nSTOPPED ({'SIGINT' if code == 130 else 'SIGTERM'}): {stopped_what(args)}", file=sys.stderr)
        return code
    finally:
        restore()


STOP_CODES = (143,)  # SIGTERM (128 + 15), as stop_on_sigterm raises it


def stopped_what(args) -> str:
    """What a stop left behind, in the words of the command that was stopped."""
    if getattr(args, "command", None) == "serve":
        return "the server stopped; requests in flight were not answered, the registry is unchanged."
    from tunegate.cli.runs import COMMANDS

    if getattr(args, "command", None) in {c.name for c in COMMANDS if c.cancels_a_run}:
        return (
            "the run was cancelled; nothing half-written was kept, production is unchanged, and a run that had "
            "started is in the audit log as 'cancelled' (tunegate audit)."
        )
    return "stopped before it finished; nothing half-written was kept."


def stop_on_sigterm():
    """SIGTERM unwinds like Ctrl-C (SystemExit(143) in the main thread): the run's failure hook audits it as
    cancelled, context managers and atexit hooks stop the embedded Prefect server and child processes.
    Returns the function that puts the previous handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, stop)
    return lambda: signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
