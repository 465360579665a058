"""``gate.seeds``: one training per seed, each scored under its own name; the seed to promote is chosen on the
selection split (else on the eval rows, with its CI widened for the choice); the seeds' record for the decision."""

from __future__ import annotations

from typing import Any

import numpy as np

from tunegate.config import GateConfig
from tunegate.records import (
    Comparison,
    EvalResult,
    TuneResult,
)
from tunegate.selection import on_selection_split


def seed_dir(seed: int) -> str:
    """Where one of ``gate.seeds`` trainings goes, below the method's folder."""
    return f"seeds/seed-{seed}"


def seed_result(result: EvalResult, seed: int) -> EvalResult:
    """One seed's evaluation under its own name (``tuned:lora@seed1``), its seed in ``details``."""
    return result.model_copy(update={"name": f"{result.name}@seed{seed}", "details": {**result.details, "seed": seed}})


def choose_seed(seeds: list[EvalResult], metric: str) -> tuple[EvalResult, str]:
    """The seed to promote and where it was chosen: the best on the selection split when every seed was scored on
    it, else the best on the eval rows (the decision then widens its CI for the choice)."""
    dev = on_selection_split(seeds)
    return max(seeds, key=lambda r: (r.selection.metrics if dev else r.metrics)[metric]), "dev" if dev else "eval"


def chosen_seed(seeds: list[tuple[TuneResult, EvalResult]], metric: str) -> tuple[TuneResult, EvalResult]:
    """The chosen seed's training and its evaluation under the candidate's own name (``tuned:lora``)."""
    pick, _ = choose_seed([e for _, e in seeds], metric)
    tuned, result = next((t, e) for t, e in seeds if e.name == pick.name)
    return tuned, result.model_copy(update={"name": result.name.split("@seed")[0]})


def seed_record(
    seeds: list[EvalResult],
    per_seed: list[Comparison],
    pick: EvalResult,
    chosen_on: str,
    metric: str,
    gate: GateConfig,
) -> dict[str, Any]:
    """Each seed's difference from the best baseline with its CI, the spread, the share that pass, the choice."""
    deltas = np.array([c.delta for c in per_seed])
    passed = sum(c.passed for c in per_seed)
    rows = [
        {
            "name": r.name,
            "seed": r.details.get("seed"),
            "metric": r.metrics[metric],
            "selection_metric": r.selection.metrics[metric] if r.selection is not None else None,
            "delta": c.delta,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "passed": c.passed,
        }
        for r, c in zip(seeds, per_seed)
    ]
    where = (
        "on the selection split"
        if chosen_on == "dev"
        else f"on the eval rows (no selection split), so its CI is at {100 * (1 - gate.alpha):.1f}% (Bonferroni for "
        f"{len(seeds)} seeds)"
    )
    why = (
        f"{len(seeds)} seeds: difference from the best baseline "
        + ", ".join(f"seed {x['seed']} {x['delta']:+.3f} [{x['ci_low']:+.3f}, {x['ci_high']:+.3f}]" for x in rows)
        + f"; spread (sd) {deltas.std(ddof=1):.3f}, range {deltas.min():+.3f} to {deltas.max():+.3f}; {passed} of "
        f"{len(seeds)} pass the gate on their own; the candidate is seed {pick.details.get('seed')}, chosen {where}"
    )
    return {
        "k": len(seeds),
        "chosen": pick.name,
        "chosen_seed": pick.details.get("seed"),
        "chosen_on": chosen_on,
        "confidence": 1 - gate.alpha,
        "per_seed": rows,
        "sd": float(deltas.std(ddof=1)),
        "min": float(deltas.min()),
        "max": float(deltas.max()),
        "share_passed": passed / len(seeds),
        "why": why,
    }
