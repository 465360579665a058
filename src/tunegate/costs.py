"""The cost model: one-off and per-request cost of every way of answering, monthly cost, break-even.

Only prices come from the config (``costs``); times and token counts are the run's own
measurements (real tokenizer, real prompts, real wall time).
"""

from __future__ import annotations

from tunegate.config import CostsConfig
from tunegate.records import BreakEven, CostLine, EvalResult, TuneResult


def duration(months: float) -> str:
    """Months in words: 'within a day', '12 days', '3.5 months', '4.2 years'."""
    if months < 1 / 30:
        return "within a day"
    if months < 1:
        return f"{months * 30:.0f} days"
    return f"{months:.1f} months" if months < 24 else f"{months / 12:.1f} years"


def per_request_usd(prices: CostsConfig, *, prompt_tokens: float, output_tokens: float, latency_ms: float) -> float:
    if prices.inference == "hourly":
        return latency_ms / 1000 / 3600 * prices.serving_per_hour
    return prompt_tokens / 1000 * prices.input_per_1k_tokens + output_tokens / 1000 * prices.output_per_1k_tokens


def _setup_words(r: EvalResult) -> str:
    parts = []
    search = (r.details.get("search") or {}).get("seconds") or 0.0  # a searched prompt's search (tokens: its record)
    if search:
        parts.append(f"prompt search {search:.0f} s")
    if r.index_build_seconds is not None:
        parts.append(
            f"index build {r.index_build_seconds:.1f} s" + (" (cached)" if r.details.get("index_cached") else "")
        )
    if "calibrated_from" in r.details:
        calibration = r.setup_seconds - (r.index_build_seconds or 0.0) - search
        if calibration > 0:
            parts.append(f"calibration {calibration:.0f} s")
    if not parts and r.setup_seconds:
        parts.append(f"setup {r.setup_seconds:.1f} s")
    return " + ".join(parts) or "-"


def cost_line(
    prices: CostsConfig,
    r: EvalResult,
    *,
    train_price_per_hour: float,
    tune: TuneResult | None = None,
    kind: str | None = None,
) -> CostLine:
    """One row of the cost table. A baseline's one-off cost is its setup (index build, calibration); a tuned
    model's is its training time; both priced at the training machine's hourly price."""
    if tune is not None:
        seconds, what = tune.train_seconds, f"training {tune.train_seconds:.0f} s"
    else:
        seconds, what = r.setup_seconds, _setup_words(r)
    per = per_request_usd(
        prices,
        prompt_tokens=r.prompt_tokens_per_request,
        output_tokens=r.output_tokens_per_request,
        latency_ms=r.latency_ms_per_request,
    )
    return CostLine(
        name=r.name,
        kind=kind or r.kind,
        one_off_usd=seconds / 3600 * train_price_per_hour,
        one_off_seconds=seconds,
        one_off_what=what,
        prompt_tokens=r.prompt_tokens_per_request,
        output_tokens=r.output_tokens_per_request,
        latency_ms=r.latency_ms_per_request,
        per_request_usd=per,
        monthly_usd=per * prices.requests_per_month,
    )


def break_even(candidate: CostLine, against: CostLine, requests_per_month: int) -> BreakEven:
    """Requests after which (candidate one-off + n x its per-request) <= (opponent one-off + n x its per-request)."""
    extra = candidate.one_off_usd - against.one_off_usd
    saving = against.per_request_usd - candidate.per_request_usd
    common = dict(
        candidate=candidate.name, against=against.name, extra_one_off_usd=extra, saving_per_request_usd=saving
    )
    if extra <= 0 and saving >= 0:
        return BreakEven(
            **common,
            requests=0.0,
            months=0.0,
            reason=f"{candidate.name} costs no more up front and no more per request than {against.name}",
        )
    if saving <= 0:
        per = f"{-saving * 1000:.4f} $ per 1K requests more" if saving < 0 else "the same per request"
        return BreakEven(
            **common,
            requests=None,
            months=None,
            reason=f"never: {candidate.name} costs {per} than {against.name} "
            f"({candidate.prompt_tokens:.0f} vs {against.prompt_tokens:.0f} prompt tokens, "
            f"{candidate.latency_ms:.0f} vs {against.latency_ms:.0f} ms), so its one-off ${extra:.4f} is never paid "
            "back",
        )
    n = extra / saving
    months = n / requests_per_month if requests_per_month else None
    when = f" ({duration(months)} at {requests_per_month:,} requests/month)" if months is not None else ""
    return BreakEven(
        **common,
        requests=n,
        months=months,
        reason=f"after {n:,.0f} requests{when}: {candidate.name} saves ${saving * 1000:.4f} per 1K requests "
        f"({candidate.prompt_tokens:.0f} vs {against.prompt_tokens:.0f} prompt tokens) and costs ${extra:.4f} more up "
        "front",
    )
