"""The learning-curve forecast: nested stratified subsets, and the fitted curve on simulated learners whose true
curve is known (a power law reaching the target at a known row count; a flat one; one already above)."""

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest

from tests.conftest import tune_result
from tests.unit.test_gate_selection import model
from tunegate.config import CostsConfig, ForecastConfig, GateConfig, GateSpec
from tunegate.errors import ConfigError
from tunegate.forecast import learning_curve, nested_rows, render

N_EVAL = 600


def tuned(rows: int):
    return tune_result(train_seconds=0.5 * rows)


def sections(c):
    """What the learning curve reads from a config: the gate and the forecast settings."""
    return c.gate_spec, c.forecast


def cfg(min_gain=0.0):
    spec = GateSpec(
        task="classification", metric="accuracy", gate=GateConfig(min_gain=min_gain), costs=CostsConfig(), batch_size=16
    )
    return SimpleNamespace(gate_spec=spec, forecast=ForecastConfig())


def exactly(rng, accuracy):
    """Right/wrong per eval row with exactly this accuracy, in random order."""
    return rng.permutation(N_EVAL) < round(accuracy * N_EVAL)


def points(rng, accuracy_at):
    return [(n, tuned(n), model("tuned:lora", exactly(rng, accuracy_at(n)), kind="tuned")) for n in (40, 80, 160)]


def test_nested_subsets_contain_each_other_and_keep_the_label_shares():
    labels = ["a"] * 300 + ["b"] * 100
    train = pl.DataFrame({"text": [f"t{i}" for i in range(400)], "label": labels})
    parts = nested_rows(train, [0.25, 0.5, 1.0], seed=0, task="classification")
    assert [len(p) for p in parts] == [100, 200, 400]
    assert set(parts[0]) <= set(parts[1]) <= set(parts[2]) and parts[2] == list(range(400))
    for p in parts:
        share = sum(labels[i] == "b" for i in p) / len(p)
        assert share == pytest.approx(0.25, abs=0.02)
    assert nested_rows(train, [0.25, 0.5, 1.0], seed=1, task="classification")[0] != parts[0]  # the seed matters


def test_a_smallest_fraction_without_every_label_is_refused_with_the_fraction_it_needs():
    labels = [f"l{i % 6}" for i in range(120)]  # six labels, 20 rows each
    train = pl.DataFrame({"text": [f"t{i}" for i in range(120)], "label": labels})
    with pytest.raises(
        ConfigError,
        match=r"forecast.fractions: the smallest, 0.01, keeps 1 of the 120 train rows and 1 "
        r"of the 6 labels.*at least 0.05",
    ):
        nested_rows(train, [0.01, 1.0], seed=0, task="classification")
    assert len(nested_rows(train, [0.05, 1.0], seed=0, task="classification")[0]) == 6


def test_a_power_law_learner_is_forecast_to_reach_the_baseline_near_the_true_row_count():
    """True error 2 * rows^-0.4 (0.54 at 40 rows, 0.74 at 160) and a 0.80 baseline: the curve reaches it at
    (2 / 0.2)^(1 / 0.4) = 316 rows. The forecast's interval holds it, and the cost is the measured time per row."""
    rng = np.random.default_rng(0)
    base = model("few_shot", exactly(rng, 0.8))
    r = learning_curve(*sections(cfg()), points(rng, lambda n: 1 - 2 * n**-0.4), base, price_per_hour=3.6)
    assert r.verdict == "reachable" and not r.flat
    assert r.rows_needed["low"] <= 316 <= r.rows_needed["high"], r.rows_needed
    assert 160 < r.rows_needed["median"] < 700
    assert r.cost_needed["train_seconds"] == pytest.approx(0.5 * r.rows_needed["median"])
    assert r.cost_needed["usd"] == pytest.approx(r.cost_needed["train_seconds"] / 1000)
    assert 0.2 < r.fit["c"] < 0.7 and r.fit["c_low"] > 0
    assert [p["rows"] for p in r.points] == [40, 80, 160] and all(
        p["ci_low"] <= p["metric"] <= p["ci_high"] for p in r.points
    )
    assert "expected to reach the best baseline few_shot" in r.summary and "labelled train rows" in r.summary
    md = render(r)
    assert "| 320 |" in md and "forecast |" in md and "measured, trained 80 s" in md


def test_a_flat_learner_is_called_flat_and_one_above_the_target_reached():
    rng = np.random.default_rng(1)
    base = model("few_shot", exactly(rng, 0.8))
    flat = learning_curve(*sections(cfg()), points(rng, lambda n: 0.7), base, price_per_hour=3.6)
    assert flat.flat and flat.verdict == "flat" and flat.rows_needed is None
    assert "more data is unlikely" in flat.summary
    done = learning_curve(*sections(cfg()), points(rng, lambda n: 0.6 + n / 500), base, price_per_hour=3.6)
    assert done.verdict == "reached" and "already scores" in done.summary
    # a min_gain the curve does not reach within 20x the rows: out of reach, with the horizon's value
    far = learning_curve(
        *sections(cfg(min_gain=0.15)), points(rng, lambda n: 1 - 2 * n**-0.4), base, price_per_hour=3.6
    )
    assert far.verdict in ("out_of_reach", "flat") and far.rows_needed is None
