"""The report's tables as typed rows (tunegate/tables.py): each interval computed once, the best rung flagged,
each rung described by its own kind, the candidate's delta CI the gate's own."""

import pytest

from tests.unit.test_stats_and_decision import result, rows
from tunegate.config import parse_config
from tunegate.costs import cost_line
from tunegate.decision import decide
from tunegate.tables import Intervals, ladder_rows, model_rows

CFG = parse_config(
    {"task": "classification", "data": {"train": "t.csv", "labels": ["a", "b"]}, "gate": {"bootstrap_samples": 300}}
)


def ladder():
    zero = result("zero_shot", rows(50, 100)).model_copy(update={"rung": "zero_shot"})
    few = result("few_shot", rows(70, 100), tokens=300).model_copy(
        update={"rung": "few_shot", "details": {"shots": [["x", "a"], ["y", "b"]]}, "setup_seconds": 1.0}
    )
    return [zero, few]


def test_ladder_rows_flag_the_best_rung_and_describe_each_by_its_kind():
    table = ladder_rows(CFG.gate_spec, ladder())
    assert [r.name for r in table] == ["zero_shot", "few_shot"] and [r.best for r in table] == [False, True]
    assert table[0].prompt == "instruction + input" and table[1].prompt == "2 fixed random train rows + input"
    for r in table:
        assert r.ci_low <= r.metric <= r.ci_high and r.ci_high - r.ci_low < 0.3
    assert table[1].prompt_tokens_per_request == 300 and table[1].setup_seconds == 1.0


def test_each_interval_is_computed_once(monkeypatch):
    import tunegate.tables as tables

    calls = []
    real = tables.bootstrap_ci
    monkeypatch.setattr(tables, "bootstrap_ci", lambda *a, **k: calls.append(1) or real(*a, **k))
    base = ladder()
    iv = Intervals(CFG.gate_spec, base[1])
    ladder_rows(CFG.gate_spec, base, iv)
    ladder_rows(CFG.gate_spec, base, iv)
    assert len(calls) == 2  # one per rung, shared by both tables


def test_model_rows_carry_the_gates_own_delta_ci_and_costs():
    base = ladder()
    tuned = result("tuned:lora", rows(90, 100), tokens=40, kind="tuned")
    lines = [cost_line(CFG.costs, r, train_price_per_hour=0.1) for r in [*base, tuned]]
    decision = decide(
        task="classification", metric="accuracy", gate=CFG.gate, baselines=base, tuned=tuned, cost_model=lines
    )
    table = model_rows(CFG.gate_spec, decision, [*base, tuned], Intervals(CFG.gate_spec, base[1]))
    by = {r.name: r for r in table}
    assert by["tuned:lora"].delta == pytest.approx(0.2)
    assert (by["tuned:lora"].delta_ci_low, by["tuned:lora"].delta_ci_high) == (decision.ci_low, decision.ci_high)
    assert by["tuned:lora"].decision == decision.decision == "promote"
    assert by["few_shot"].decision == "best baseline" and by["zero_shot"].decision == "baseline"
    assert by["zero_shot"].delta_ci_low is None and by["few_shot"].prompt_tokens == 300
