"""Numbers in words for the reports: minutes, money, the prices a cost model used."""

from __future__ import annotations


def _mins(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _money(x: float) -> str:
    if x == 0:
        return "$0"
    return f"${x:.2f}" if abs(x) >= 1 else f"${x:.4f}" if abs(x) >= 0.0001 else f"${x:.2e}"


def prices_label(prices: dict) -> str:
    if prices.get("inference") == "hourly":
        return f"serving ${prices['serving_per_hour']:g}/h x measured latency"
    return f"${prices['input_per_1k_tokens']:g} / ${prices['output_per_1k_tokens']:g} per 1K prompt / output tokens"
