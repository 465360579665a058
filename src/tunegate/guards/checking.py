"""Running the guards a run turns on, and judging them again from their evidence.

:func:`check` measures each guard, judges its measures (:func:`tunegate.guards.verdicts.judge`), plots them and
writes every measure's per-row values to ``guards.json``, the evidence :func:`rejudge` (``tunegate audit
verify``) recomputes each verdict from. A guard that raises is reported as not measured with the error: a
guard never hides a failure, and never crashes the run's decision.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tunegate.guards.base import GUARDS, Measured, Rows
from tunegate.guards.verdicts import judge, verdict
from tunegate.records import GuardReport, GuardResult

ROWS_FILE = "guards.json"


def enabled(section: Any) -> list[tuple[str, Any]]:
    """(key, settings) of each guard the ``guards:`` section turns on, in registry order."""
    if section is None:
        return []
    return [(key, getattr(section, key)) for key in GUARDS if getattr(section, key, None) is not None]


def _judge_all(key: str, settings, measured: Measured, gate: dict, seconds: float) -> GuardResult:
    """Every measure judged at the gate's alpha, power, resamples and seed, and the guard's verdict."""
    measures = [judge(r, **gate) for r in measured.rows]
    return verdict(key, settings, measured, measures, alpha=gate["alpha"], seconds=seconds)


def check(section: Any, ctx) -> GuardReport:
    """Every guard ``section`` turns on, measured on ``ctx`` (:class:`~tunegate.guards.context.GuardContext`);
    writes guards.json and plots/guard_<key>.png into the run folder."""
    from tunegate.report.charts import save_guard_plot

    t_all = time.perf_counter()
    results, evidence = [], {}
    run_dir = Path(ctx.run_dir)
    gate = {"alpha": ctx.alpha, "power": ctx.power, "resamples": ctx.resamples, "seed": ctx.seed}
    for key, settings in enabled(section):
        t0 = time.perf_counter()
        try:
            measured = GUARDS[key].load()().measure(settings, ctx)
        except Exception as exc:  # noqa: BLE001 - reported as not measured, with the error, never silently passed
            measured = Measured(not_measured=f"it failed: {type(exc).__name__}: {exc}")
        result = _judge_all(key, settings, measured, gate, time.perf_counter() - t0)
        evidence[key] = {
            "settings": result.settings,
            "reference": measured.reference,
            "not_measured": measured.not_measured,
            "warnings": measured.warnings,
            "rows": [r.to_json() for r in measured.rows],
        }
        if result.measures:
            rel = f"plots/guard_{key}.png"
            save_guard_plot(result.measures, run_dir / rel, f"{key}: candidate vs the {measured.reference}")
            result.plot = rel
        results.append(result)
    rows_path = None
    if results:
        from tunegate.registry import atomic_write_text

        rows_path = str(run_dir / ROWS_FILE)
        atomic_write_text(Path(rows_path), json.dumps({"gate": gate, "guards": evidence}))
    return GuardReport(results=results, rows_path=rows_path, seconds=time.perf_counter() - t_all)


def preflight(section: Any, config_dir: Path) -> list[str]:
    """Every enabled guard's complaints about the files it names (validation's ``guard_files`` check)."""
    return [msg for key, settings in enabled(section) for msg in GUARDS[key].load()().preflight(settings, config_dir)]


def rejudge(evidence: dict) -> list[GuardResult]:
    """Each guard's verdict recomputed from guards.json (its per-row values, declared settings and the gate's
    alpha, power, resamples and seed): what ``tunegate audit verify`` compares with the recorded decision."""
    gate = evidence["gate"]
    out = []
    for key, g in evidence["guards"].items():
        entry = GUARDS.get(key)
        if entry is None:
            raise KeyError(f"guard '{key}' is not registered here")
        settings = entry.settings(**g["settings"])
        measured = Measured(
            rows=[Rows(**r) for r in g["rows"]],
            not_measured=g["not_measured"],
            reference=g["reference"],
            warnings=list(g["warnings"]),
        )
        out.append(_judge_all(key, settings, measured, gate, 0.0))
    return out
