"""`tunegate run | retrain | compare | forecast | baselines | plan | validate`: the flows and their stages."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tunegate.cli.common import load, with_config


def add_commands(sub) -> None:
    """Register this group's subcommands (``COMMANDS``) on the top-level parser's ``sub``; each takes the config."""
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        with_config(p)
        for flags, options in command.arguments:
            p.add_argument(*flags, **options)
        p.set_defaults(func=command.func)


def _run_flow(args, which: str) -> tuple[Any, Any, dict]:
    cfg = load(args)  # config and model errors surface here, before Prefect starts
    kwargs: dict[str, Any] = {}
    if getattr(args, "resume", None):
        from tunegate.runs import resume_run

        resume_run(cfg, args.resume)  # a wrong run id or a changed config: one message, before Prefect starts
        kwargs["resume"] = args.resume
    from tunegate.prefect_env import configure

    configure()
    from tunegate.flows.common import isolate_temporary_server

    isolate_temporary_server()
    if which == "compare":
        from tunegate.flows.method_comparison import compare as flow_fn
    elif which == "retrain":
        from tunegate.flows.retrain import retrain as flow_fn

        kwargs["force"] = bool(args.force)
    elif which == "baselines":
        from tunegate.flows.baselines import baselines as flow_fn
    elif which == "forecast":
        from tunegate.flows.forecast import forecast as flow_fn
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


def _failed(state, data: dict, registry_note: bool = True, cfg=None) -> int:
    msg = state.message or "the run failed"
    print(f"ERROR: {msg}", file=sys.stderr)
    if data.get("run_dir"):
        print(f"Run folder: {data['run_dir']}", file=sys.stderr)
    if registry_note:
        where = (
            "the failure is in the audit log (tunegate audit)"
            if _audited(cfg, data.get("run_dir"))
            else "no audit record could be written for it (see the message above)"
        )
        print(f"No model was registered and no alias moved; {where}.", file=sys.stderr)
    return 1


def _audited(cfg, run_dir: str | None) -> bool:
    """Whether the registry's audit log holds a record of the run in ``run_dir``."""
    if cfg is None or not run_dir:
        return True  # nothing to check against: the flow's hook wrote it or said why not
    try:
        from tunegate.audit import AuditLog

        return any(r.run_id == Path(run_dir).name for r in AuditLog(cfg.registry.path).records())
    except Exception:  # noqa: BLE001 - an unreadable log is a log without that record
        return False


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
    return _failed(state, data, cfg=cfg)


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


def cmd_forecast(args) -> int:
    cfg, state, data = _run_flow(args, "forecast")
    if state.is_completed():
        report = data.get("forecast")
        if report and Path(report).is_file():
            print(Path(report).read_text())
        print(f"\nRun folder: {data.get('run_dir')}  (forecast.md, forecast.json, forecast.png, forecast/)")
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


def cmd_plan(args) -> int:
    from tunegate import stages
    from tunegate.report import render_plan

    cfg = load(args)
    run = stages.prepare_run(cfg)
    result = stages.validate_data(cfg, run)
    if not result.ok:
        print(f"ERROR: {result.summary} Report: {result.report_md}", file=sys.stderr)
        return 1
    cfg = cfg.with_resolved(result.resolved)
    print("Calibrating each method with a short timed run on real rows...", file=sys.stderr)
    plan = stages.plan(cfg, run, result.dataset)
    print(render_plan(plan, cfg.budget))
    print(f"Written: {Path(run.run_dir) / 'plan.md'} and plan.json")
    return 1 if plan.blocked else 0


def cmd_validate(args) -> int:
    from tunegate import stages

    cfg = load(args)
    run = stages.prepare_run(cfg)
    result = stages.validate_data(cfg, run)
    print(Path(result.report_md).read_text())
    print(f"Report: {result.report_md} and {result.report_json}")
    if not result.ok:
        print(f"ERROR: {result.summary}", file=sys.stderr)
        return 1
    return 0


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, the description `--help` prints, what it runs, its own options."""

    name: str
    help: str
    description: str
    func: Callable
    arguments: tuple = ()
    cancels_a_run: bool = True  # stopped (SIGINT/SIGTERM), the run it started is recorded as 'cancelled'


COMMANDS = (
    Command(
        "run",
        help="run the whole pipeline (a Prefect flow)",
        description=(
            "Run the whole pipeline as one Prefect flow: validate data, evaluate baselines (cached), tune, evaluate "
            "the tuned model, compare with a paired bootstrap CI, and register/promote. Prefect runs embedded unless "
            "PREFECT_API_URL points at a server. Exit code 0 when the run completed (promoted or not), 1 when it "
            "failed (e.g. bad data), 2 for config errors, 130/143 when stopped by SIGINT/SIGTERM."
        ),
        func=cmd_run,
        arguments=(
            (
                ("--resume",),
                dict(
                    metavar="RUN_ID",
                    help=(
                        "run an interrupted run again in its folder (runs/RUN_ID) with the same config: training "
                        "continues from its newest checkpoint (method.checkpoint_every) instead of step 0"
                    ),
                ),
            ),
        ),
    ),
    Command(
        "retrain",
        help=(
            "champion/challenger retraining: skip when nothing changed, else tune and promote only over baselines AND"
            " production"
        ),
        description=(
            "Run the retrain flow (what the scheduled deployments run): re-read and validate the data; if its data "
            "hash and the config equal those of the newest registered version, stop and record 'no change' in the "
            "audit log; otherwise tune a challenger and promote it only if the gate finds it better than the best "
            "baseline and the current production model on the same eval rows. Exit code 0 when the run completed "
            "(retrained or not)."
        ),
        func=cmd_retrain,
        arguments=((("--force",), dict(action="store_true", help="retrain even if the data did not change")),),
    ),
    Command(
        "compare",
        help="run every applicable method on the same data and print the measured trade-off table",
        description=(
            "Run the baselines once, then every method listed under `compare` in the config (default: every method "
            "that applies to the task) on the same train and eval rows, each as its own Prefect tasks. Writes "
            "compare.md (table: metric with CI, delta vs the best baseline with CI, trainable params, peak memory, "
            "train time vs the plan's estimate, artifact size, latency, the gate's decision) and a bar chart. A "
            "method that fails is reported in the table; the others still run. Nothing is registered."
        ),
        func=cmd_compare,
    ),
    Command(
        "forecast",
        help="would more labelled rows make tuning pay off? train on nested fractions of train and fit the curve",
        description=(
            "Train the configured method (or the one `auto` picks) on nested fractions of the train rows "
            "(forecast.fractions, default 1/4, 1/2, all; stratified by label), score each on the same eval rows, fit "
            "a learning curve (1 - metric = b * rows^-c, a bootstrap over the eval rows for its uncertainty) and say "
            "how many labelled rows would be expected to clear the best baseline + gate.min_gain and what training on"
            " them would cost; or that the curve is flat and more data is unlikely to help. Writes "
            "forecast.md/.json/.png. Nothing is registered. Exit code 0 when the forecast completed, whatever it "
            "says."
        ),
        func=cmd_forecast,
    ),
    Command(
        "baselines",
        help="measure the baseline ladder only (zero-shot, calibrated, few-shot, retrieved few-shot, RAG)",
        description=(
            "Measure what you get without tuning, on the eval rows: zero-shot; zero-shot with the label prior "
            "calibrated (classification); few-shot with fixed random demonstrations; few-shot with the most similar "
            "train rows retrieved per input (bm25, dense or hybrid: baselines.retrieved_few_shot.retrievers); RAG "
            "over baselines.rag.documents. Writes ladder.md/.json (metric with CI, prompt tokens, retrieval and total"
            " latency, index build time and size) and saves the indexes with the run. Nothing is trained or "
            "registered."
        ),
        func=cmd_baselines,
    ),
    Command(
        "plan",
        help="estimate time, memory and cost of each method before anything trains",
        description=(
            "Validate the data, then run a short calibration of the configured method (every applicable method for "
            "`method: auto`) on this machine and print, per method: trainable parameters, estimated peak memory, "
            "estimated training time on the detected hardware, estimated cost at costs.cpu_per_hour (gpu_per_hour on "
            "CUDA), and whether it fits the budget caps. For `method: auto`, also which method the advisor picks and "
            "why. Exit code 1 when over budget (a `tunegate run` would stop before training)."
        ),
        func=cmd_plan,
    ),
    Command(
        "validate",
        help="check the data only (no Prefect, no training)",
        description=(
            "Run every data check of the pipeline and print the report (written to the run folder too). Exit code 1 "
            "if any check failed."
        ),
        func=cmd_validate,
        cancels_a_run=False,
    ),
)
