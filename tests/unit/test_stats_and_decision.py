import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunegate import metrics
from tunegate.decision import decide
from tunegate.records import EvalResult, Prediction
from tunegate.selection import best_baseline
from tunegate.stats import bootstrap_weights, paired_bootstrap


def test_metric_modules_compute_known_values():
    vals, per = metrics.compute("classification", ["a", "b", "a", "a"], ["a", "b", "b", "a"])
    assert vals["accuracy"] == pytest.approx(0.75)
    assert vals["macro_f1"] == pytest.approx(f1_score(["a", "b", "b", "a"], ["a", "b", "a", "a"], average="macro"))
    assert per["accuracy"] == [1.0, 1.0, 0.0, 1.0]
    vals, per = metrics.compute(
        "generation", ["the cat sat", "Hello  World"], [["the cat sat down", "a cat"], "hello world"]
    )
    assert vals["exact_match"] == pytest.approx(0.5) and per["exact_match"] == [0.0, 1.0]
    assert per["rouge_l"][0] == pytest.approx(2 * 1.0 * 0.75 / 1.75)  # P=3/3, R=3/4 against the best reference
    # answer in output: the (normalized, whole-word) reference occurs in the generation
    _, per = metrics.compute(
        "generation",
        [
            "The observatory was founded by Ilse Dravenko.",
            "It was built in 1862!",
            "founded by Ilse",
            "Catherine",
            "The Long Eye.",
        ],
        [["Ilse Dravenko"], ["1862"], ["Ilse Dravenko"], ["cat"], ["the long eye", "long eye"]],
    )
    assert per["answer_in_output"] == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_resampled_macro_f1_equals_sklearn():
    rng = np.random.default_rng(0)
    t = list(rng.choice(["x", "y", "z"], 50))
    p = list(rng.choice(["x", "y", "z"], 50))
    w = bootstrap_weights(50, 5, seed=1)
    got = metrics.resampled("macro_f1", np.vstack([np.ones(50), w]), predictions=p, references=t)
    assert got[0] == pytest.approx(f1_score(t, p, average="macro"))
    for b in range(5):
        idx = np.repeat(np.arange(50), w[b].astype(int))
        assert got[b + 1] == pytest.approx(f1_score(np.array(t)[idx], np.array(p)[idx], average="macro"))


def test_bootstrap_identical_predictions_give_zero():
    refs = ["a", "b"] * 50
    side = {"predictions": refs[:], "per_example": [1.0] * 100}
    d = paired_bootstrap("accuracy", candidate=side, baseline=side, references=refs, resamples=500)
    assert d.delta == 0 and d.ci_low == 0 and d.ci_high == 0


def test_bootstrap_ci_covers_the_true_difference():
    """Simulation: accuracies 0.80 vs 0.70 on 300 rows; the 95% CI covers +0.10 in most repeats."""
    covered = 0
    for rep in range(40):
        rng = np.random.default_rng(rep)
        a = (rng.random(300) < 0.8).astype(float)
        b = (rng.random(300) < 0.7).astype(float)
        refs = ["r"] * 300
        d = paired_bootstrap(
            "accuracy",
            candidate={"per_example": list(a)},
            baseline={"per_example": list(b)},
            references=refs,
            resamples=500,
            seed=rep,
        )
        covered += d.ci_low <= 0.10 <= d.ci_high
        assert d.ci_low <= d.delta <= d.ci_high
    assert covered >= 34  # ~95% expected; 34/40 leaves room for sampling noise


def result(name, correct, tokens=50.0, kind="baseline"):
    """An EvalResult whose row i is right iff correct[i] (labels a/b, reference always a)."""
    preds = [Prediction(row=i, prediction="a" if c else "b", reference="a") for i, c in enumerate(correct)]
    return EvalResult(
        name=name,
        kind=kind,
        metrics={"accuracy": float(np.mean(correct))},
        predictions=preds,
        n=len(correct),
        prompt_tokens_per_request=tokens,
        latency_ms_per_request=10,
        examples_per_s=100,
        seconds=0.1,
        batch_size=4,
    )


def rows(n_right, n):
    return [True] * n_right + [False] * (n - n_right)


def test_best_baseline_and_gate_rule():
    from tunegate.config import GateConfig

    zs, fs = result("zero_shot", rows(50, 100)), result("few_shot", rows(60, 100), tokens=300)
    assert best_baseline([zs, fs], "accuracy").name == "few_shot"
    tuned = result("tuned:lora", rows(90, 100), kind="tuned")
    kw = dict(task="classification", metric="accuracy", baselines=[zs, fs], tuned=tuned)
    promoted = decide(gate=GateConfig(min_gain=0.05, bootstrap_samples=500), **kw)
    c = promoted.comparisons[0]
    assert promoted.decision == "promote" and promoted.best_baseline == "few_shot" and c.passed
    assert (c.mcnemar_candidate_only, c.mcnemar_opponent_only) == (30, 0) and c.mcnemar_p < 1e-8
    assert any("300 for 'few_shot'" in r for r in promoted.reasons)  # the prompt-length saving is stated
    assert promoted.headline.startswith("Tuning paid off: lora scored accuracy 0.900 vs 0.600 for few_shot")
    assert promoted.gate["min_gain"] == 0.05 and promoted.gate["metric"] == "accuracy"  # the declared gate is recorded
    below = decide(gate=GateConfig(min_gain=0.5, bootstrap_samples=500), **kw)
    assert below.decision == "reject" and "whole 95% CI lies at or below" in below.comparisons[0].why
    assert below.headline.startswith("Tuning did not pay off")


def test_mcnemar_can_veto_a_thin_bootstrap_win():
    """5 rows only the tuned model gets right, none the other way, 400 rows: the bootstrap CI excludes 0, but
    McNemar's exact p = 2/32 = 0.0625 >= 0.05; with gate.mcnemar the gate refuses, without it it promotes."""
    from tunegate.config import GateConfig

    base = result("zero_shot", rows(300, 400))
    tuned = result("tuned:lora", rows(305, 400), kind="tuned")
    kw = dict(task="classification", metric="accuracy", baselines=[base], tuned=tuned)
    strict = decide(gate=GateConfig(bootstrap_samples=2000), **kw).comparisons[0]
    assert strict.ci_low > 0 and strict.mcnemar_p == pytest.approx(2 / 32)
    assert not strict.passed and "McNemar's exact test does not confirm it" in strict.why
    assert decide(gate=GateConfig(bootstrap_samples=2000, mcnemar=False), **kw).decision == "promote"


def test_gate_requires_beating_production_too():
    from tunegate.config import GateConfig

    base = result("zero_shot", rows(60, 200))
    tuned = result("tuned:lora", rows(150, 200), kind="tuned")
    champion = result("intents@v1", rows(170, 200), kind="production")
    d = decide(
        task="classification",
        metric="accuracy",
        gate=GateConfig(bootstrap_samples=500),
        baselines=[base],
        tuned=tuned,
        production=champion,
    )
    assert [c.role for c in d.comparisons] == ["best_baseline", "production"]
    assert d.comparisons[0].passed and not d.comparisons[1].passed and d.decision == "reject"
    assert d.headline.startswith("The challenger beats the baselines but not the production model")
    assert "against production intents@v1" in d.headline and "production stays intents@v1" in d.headline
    weaker = result("intents@v1", rows(100, 200), kind="production")
    assert (
        decide(
            task="classification",
            metric="accuracy",
            gate=GateConfig(bootstrap_samples=500),
            baselines=[base],
            tuned=tuned,
            production=weaker,
        ).decision
        == "promote"
    )


def test_small_eval_set_is_called_underpowered():
    from tunegate.config import GateConfig

    rng = np.random.default_rng(3)
    base = result("zero_shot", list(rng.random(40) < 0.6))
    tuned = result("tuned:lora", list(rng.random(40) < 0.7), kind="tuned")
    d = decide(task="classification", metric="accuracy", gate=GateConfig(min_gain=0.05), baselines=[base], tuned=tuned)
    c = d.comparisons[0]
    assert c.mde > 0.2  # 40 rows cannot see a 5-point gain
    assert d.underpowered and "too small for the declared minimum gain +0.050" in d.underpowered
    need = int(d.underpowered.split("about ")[1].split(" rows")[0].replace(",", ""))
    assert need == int(np.ceil(40 * (c.mde / 0.05) ** 2))
    big = decide(
        task="classification",
        metric="accuracy",
        gate=GateConfig(min_gain=0.05),
        baselines=[result("zero_shot", rows(3000, 5000))],
        tuned=result("tuned:lora", rows(3400, 5000), kind="tuned"),
    )
    assert big.underpowered is None and big.comparisons[0].mde < 0.05


def test_mcnemar_exact_on_a_hand_computed_table():
    from tunegate.stats import mcnemar_exact

    # 2x2 table: both right 50, candidate only 9, baseline only 2, both wrong 39 (n = 100)
    cand = [True] * 50 + [True] * 9 + [False] * 2 + [False] * 39
    base = [True] * 50 + [False] * 9 + [True] * 2 + [False] * 39
    m = mcnemar_exact(cand, base)
    assert (m.candidate_only, m.baseline_only) == (9, 2)
    # exact: P(X <= 2 or X >= 9), X ~ Binomial(11, 1/2) = 2 * (1 + 11 + 55) / 2048
    assert m.p_value == pytest.approx(2 * 67 / 2048)
    assert mcnemar_exact(cand, base, alternative="greater").p_value == pytest.approx(67 / 2048)
    # no discordant rows: no evidence either way
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    with pytest.raises(ValueError, match="same rows"):
        mcnemar_exact([True], [True, False])


def test_minimum_detectable_difference():
    from tunegate.stats import min_detectable_difference, paired_sd

    # (1.95996 + 0.84162) * 0.5 / sqrt(100)
    assert min_detectable_difference(100, sd=0.5) == pytest.approx(0.140079, abs=1e-5)
    assert min_detectable_difference(400, sd=0.5) == pytest.approx(min_detectable_difference(100, sd=0.5) / 2)
    assert paired_sd([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(np.std([0, 1, -1, 0], ddof=1))


def test_aa_gate_promotes_no_more_often_than_alpha():
    """A/A: the real gate (decision.compare_pair: bootstrap CI + McNemar) with a candidate of the baseline's quality.

    200 eval sets of 200 rows, each with its own bootstrap seed. Identical predictions must never promote; an
    independent model of the same true accuracy must promote at most alpha of the time; and the gate is not
    vacuous: a truly better model (0.82 vs 0.70) mostly gets through.
    """
    from tunegate.config import GateConfig
    from tunegate.decision import compare_pair

    rng = np.random.default_rng(7)
    n, trials = 200, 200
    same = independent = better_promoted = 0
    for t in range(trials):
        gate = GateConfig(alpha=0.05, bootstrap_samples=300, seed=t)
        base = result("zero_shot", list(rng.random(n) < 0.7))
        kw = dict(task="classification", metric="accuracy", gate=gate, role="best_baseline")
        same += compare_pair(
            result("tuned:lora", [p.prediction == "a" for p in base.predictions], kind="tuned"), base, **kw
        ).passed
        independent += compare_pair(result("tuned:lora", list(rng.random(n) < 0.7), kind="tuned"), base, **kw).passed
        better_promoted += compare_pair(
            result("tuned:lora", list(rng.random(n) < 0.82), kind="tuned"), base, **kw
        ).passed
    assert same == 0
    assert independent / trials <= 0.05  # one-sided use of a two-sided test: expected ~2.5%
    assert better_promoted / trials > 0.6
