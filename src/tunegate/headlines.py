"""The decision in words: its one-sentence headline (quality or cost objective) and the power note."""

from __future__ import annotations

from typing import Any

from tunegate.config import GateConfig
from tunegate.costs import duration
from tunegate.records import (
    BreakEven,
    Comparison,
)
from tunegate.stats import rows_needed


def power_note(c: Comparison, gate: GateConfig) -> str | None:
    """Say so when the eval set is too small to detect the declared gain (or to confirm the observed one)."""
    power = f"{100 * gate.power:.0f}% power at alpha {gate.alpha:g}"
    if gate.min_gain > 0 and c.mde > gate.min_gain:
        need = rows_needed(c.n, c.mde, gate.min_gain)
        return (
            f"the eval set ({c.n} rows) is too small for the declared minimum gain {gate.min_gain:+.3f}: the smallest "
            "true "
            f"difference it detects with {power} is {c.mde:.3f}; about {need:,} rows would be needed"
        )
    if not c.passed and c.ci_low <= gate.min_gain < c.ci_high and c.delta > gate.min_gain:
        need = rows_needed(c.n, c.mde, c.delta - gate.min_gain)
        return (
            f"inconclusive on {c.n} rows: true differences smaller than {c.mde:.3f} usually go undetected ({power}); "
            f"confirming the observed {c.delta:+.3f} would need about {need:,} rows"
        )
    return None


def _ci(c: Comparison, gate: GateConfig) -> str:
    text = f"{c.delta:+.3f}, {100 * gate.confidence:.0f}% CI [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
    if c.mcnemar_p is not None:
        text += f", McNemar p = {c.mcnemar_p:.2g}"
    return text


def headline(
    *,
    promote: bool,
    method: str,
    metric: str,
    vs_base: Comparison,
    vs_prod: Comparison | None,
    n_baselines: int,
    gate: GateConfig,
    break_even: BreakEven | None,
    production_after: str | None,
    cost: dict[str, Any] | None = None,
    chosen_on: str = "eval",
) -> str:
    """The decision in one sentence."""
    if cost is not None:
        return cost_headline(
            promote=promote,
            method=method,
            metric=metric,
            vs_base=vs_base,
            vs_prod=vs_prod,
            gate=gate,
            cost=cost,
            production_after=production_after,
        )
    where = " on the selection split" if chosen_on == "dev" else ""
    base = (
        f"{method} scored {metric} {vs_base.candidate_metric:.3f} vs {vs_base.opponent_metric:.3f} for "
        f"{vs_base.opponent} (the best of {n_baselines} baselines{where}; {_ci(vs_base, gate)})"
    )
    if vs_prod is not None:
        base += f" and {vs_prod.opponent_metric:.3f} for production {vs_prod.opponent} ({_ci(vs_prod, gate)})"
    cost = ""
    if break_even is not None and break_even.requests is None:
        cost = "; at these prices its training would never be paid back by cheaper requests"
    elif break_even is not None and break_even.requests > 0:
        when = f", {duration(break_even.months)} at the expected volume" if break_even.months is not None else ""
        cost = (
            f"; its cheaper requests pay back its training after {break_even.requests:,.0f} requests{when}"
            if promote
            else f"; it would be cheaper per request (its training paid back after {break_even.requests:,.0f} "
            f"requests{when}), "
            "but it must win on quality first"
        )
    if promote:
        return f"Tuning paid off: {base}, so it is promoted to production{cost}."
    failed = vs_base if not vs_base.passed else vs_prod
    target = "the best baseline" if failed is vs_base else f"production {failed.opponent}"
    stays = f"; production stays {production_after}" if production_after else ""
    lead = (
        "Tuning did not pay off"
        if failed is vs_base
        else "The challenger beats the baselines but not the production model"
    )
    return f"{lead}: {base}; against {target} {failed.why}, so it is not promoted{stays}{cost}."


def cost_headline(
    *,
    promote: bool,
    method: str,
    metric: str,
    vs_base: Comparison,
    vs_prod: Comparison | None,
    gate: GateConfig,
    cost: dict[str, Any],
    production_after: str | None,
) -> str:
    """The decision in one sentence, objective cost: as good within the margin, and cheaper."""
    base = (
        f"{method} scored {metric} {vs_base.candidate_metric:.3f} vs {vs_base.opponent_metric:.3f} for "
        f"{vs_base.opponent} ({_ci(vs_base, gate)}; non-inferiority margin {gate.non_inferiority_margin:.3f})"
    )
    if vs_prod is not None:
        base += f" and {vs_prod.opponent_metric:.3f} for production {vs_prod.opponent} ({_ci(vs_prod, gate)})"
    if promote:
        return f"Tuning paid off on cost: {base}; {cost['why']}, so it is promoted to production."
    failed = next((c for c in (vs_base, vs_prod) if c is not None and not c.passed), None)
    if failed is not None:
        target = "the best baseline" if failed is vs_base else f"production {failed.opponent}"
        why = f"against {target} {failed.why}"
    else:
        why = cost["why"]
    stays = f"; production stays {production_after}" if production_after else ""
    return f"Tuning did not pay off on cost: {base}; {why}, so it is not promoted{stays}."


def guard_headline(
    refused: list, *, method: str, metric: str, vs_base: Comparison, production_after: str | None
) -> str:
    """The decision in one sentence when the candidate wins the gate but a blocking guard refuses it."""
    stays = f"; production stays {production_after}" if production_after else ""
    what = "; ".join(g.sentence.split(": ", 1)[-1] for g in refused)
    names = " and ".join(f"the {g.guard} guard" for g in refused)
    return (
        f"{method} wins on {metric} ({vs_base.candidate_metric:.3f} vs {vs_base.opponent_metric:.3f} for "
        f"{vs_base.opponent}) but {names} refused it ({what}), so it is not promoted{stays}."
    )
