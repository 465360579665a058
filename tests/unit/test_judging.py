"""The comparing stages (tunegate/judging.py): `tunegate compare`'s winner, chosen on the selection split when
there is one, else on the eval rows with its CI widened for the choice."""

from tests.unit.test_stats_and_decision import result, rows
from tunegate.config import parse_config
from tunegate.judging import choose_winner
from tunegate.records import Selection

CFG = parse_config(
    {"task": "classification", "data": {"train": "t.csv", "labels": ["a", "b"]}, "gate": {"bootstrap_samples": 300}}
)


def candidates():
    base = [result("zero_shot", rows(50, 100)), result("few_shot", rows(60, 100))]
    lora = result("tuned:lora", rows(80, 100), kind="tuned")
    probe = result("tuned:linear_probe", rows(78, 100), kind="tuned")
    return base, lora, probe


def test_without_a_selection_split_the_winners_ci_is_widened_for_the_choice():
    base, lora, probe = candidates()
    one = choose_winner(CFG.gate_spec, base, [lora])
    two = choose_winner(CFG.gate_spec, base, [lora, probe])
    assert one["name"] == two["name"] == "lora" and one["chosen_on"] == two["chosen_on"] == "eval"
    assert one["why"] == "the only method" and one["confidence"] == 0.95
    assert two["confidence"] == 0.975 and "Bonferroni for 2 candidates" in two["why"]
    assert two["ci_high"] - two["ci_low"] > one["ci_high"] - one["ci_low"]  # wider for having chosen


def test_with_a_selection_split_the_winner_is_chosen_there():
    base, lora, probe = candidates()

    def on_dev(r, right):
        correct = rows(right, 40)
        from tests.unit.test_stats_and_decision import result as make

        dev = make(r.name, correct)
        return r.model_copy(update={"selection": Selection(metrics=dev.metrics, predictions=dev.predictions, n=40)})

    base = [on_dev(b, 20) for b in base]
    lora, probe = on_dev(lora, 25), on_dev(probe, 30)  # the probe wins on the selection split
    w = choose_winner(CFG.gate_spec, base, [lora, probe])
    assert w["name"] == "linear_probe" and w["chosen_on"] == "dev" and w["confidence"] == 0.95
    assert w["why"] == "chosen on the selection split (40 rows), judged on the eval rows"
