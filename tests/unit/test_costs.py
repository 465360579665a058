"""The cost model (tunegate/costs.py): cost lines from measured tokens and times at the configured prices,
break-even against the best baseline, and durations in words."""

import pytest

from tests.unit.test_stats_and_decision import result, rows
from tunegate.config import CostsConfig
from tunegate.costs import break_even, cost_line, duration


def test_break_even_and_cost_lines():
    from tests.conftest import tune_result

    prices = CostsConfig(
        cpu_per_hour=3.6, input_per_1k_tokens=0.001, output_per_1k_tokens=0.002, requests_per_month=1000
    )
    base = result("few_shot", rows(6, 10), tokens=400).model_copy(
        update={"output_tokens_per_request": 2.0, "setup_seconds": 10.0}
    )
    tuned_eval = result("tuned:lora", rows(9, 10), tokens=50, kind="tuned").model_copy(
        update={"output_tokens_per_request": 2.0}
    )
    tune = tune_result(train_seconds=1000.0)
    b = cost_line(prices, base, train_price_per_hour=3.6)
    t = cost_line(prices, tuned_eval, train_price_per_hour=3.6, tune=tune)
    assert b.one_off_usd == pytest.approx(0.01) and t.one_off_usd == pytest.approx(1.0)  # 10 s and 1000 s at $3.6/h
    assert b.per_request_usd == pytest.approx(0.4 * 0.001 + 0.002 * 0.002)  # 400 prompt + 2 output tokens
    assert t.per_request_usd == pytest.approx(0.05 * 0.001 + 0.002 * 0.002)
    assert t.monthly_usd == pytest.approx(1000 * t.per_request_usd)
    be = break_even(t, b, prices.requests_per_month)
    assert be.requests == pytest.approx((1.0 - 0.01) / (0.00035)) and be.months == pytest.approx(be.requests / 1000)
    never = break_even(b.model_copy(update={"name": "x", "one_off_usd": 2.0}), t, 1000)
    assert never.requests is None and never.reason.startswith("never")
    assert break_even(t.model_copy(update={"one_off_usd": 0.0}), b, 1000).requests == 0
    hourly = CostsConfig(inference="hourly", serving_per_hour=36.0)
    assert cost_line(hourly, base, train_price_per_hour=1).per_request_usd == pytest.approx(10 / 1000 / 3600 * 36.0)


def test_durations_read_as_words():
    assert duration(0.01) == "within a day"
    assert duration(0.5) == "15 days"
    assert duration(3.46) == "3.5 months"
    assert duration(50) == "4.2 years"


def test_a_baselines_one_off_cost_names_its_setup():
    """Index build (cached or not), a prompt search and calibration scoring are what a rung pays once; they are
    named."""
    prices = CostsConfig(cpu_per_hour=3.6)
    retrieved = result("retrieved_few_shot_hybrid", rows(7, 10)).model_copy(
        update={"setup_seconds": 12.0, "index_build_seconds": 2.0, "details": {"index_cached": True}}
    )
    line = cost_line(prices, retrieved, train_price_per_hour=3.6)
    assert line.one_off_what == "index build 2.0 s (cached)" and line.one_off_usd == pytest.approx(0.012)
    twin = retrieved.model_copy(update={"details": {"calibrated_from": "retrieved_few_shot_hybrid"}})
    assert cost_line(prices, twin, train_price_per_hour=3.6).one_off_what == "index build 2.0 s + calibration 10 s"
    searched = twin.model_copy(update={"details": {**twin.details, "search": {"seconds": 6.0}}})  # of the 12 s
    assert cost_line(prices, searched, train_price_per_hour=3.6).one_off_what == (
        "prompt search 6 s + index build 2.0 s + calibration 4 s"
    )
    plain = result("zero_shot", rows(5, 10))
    assert cost_line(prices, plain, train_price_per_hour=3.6).one_off_what == "-"
    assert cost_line(prices, plain, train_price_per_hour=3.6, kind="production").kind == "production"
