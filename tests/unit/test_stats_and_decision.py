import numpy as np
import pytest
from sklearn.metrics import f1_score

from tunegate import metrics
from tunegate.decision import best_baseline, decide
from tunegate.records import EvalResult, Prediction
from tunegate.stats import bootstrap_weights, paired_bootstrap


def test_metric_modules_compute_known_values():
    vals, per = metrics.compute("classification", ["a", "b", "a", "a"], ["a", "b", "b", "a"])
    assert vals["accuracy"] == pytest.approx(0.75)
    assert vals["macro_f1"] == pytest.approx(f1_score(["a", "b", "b", "a"], ["a", "b", "a", "a"], average="macro"))
    assert per["accuracy"] == [1.0, 1.0, 0.0, 1.0]
    vals, per = metrics.compute("generation", ["the cat sat", "Hello  World"], [["the cat sat down", "a cat"], "hello world"])
    assert vals["exact_match"] == pytest.approx(0.5) and per["exact_match"] == [0.0, 1.0]
    assert per["rouge_l"][0] == pytest.approx(2 * 1.0 * 0.75 / 1.75)  # P=3/3, R=3/4 against the best reference
    # answer in output: the (normalized, whole-word) reference occurs in the generation
    _, per = metrics.compute("generation", [
        "The observatory was founded by Ilse Dravenko.", "It was built in 1862!", "founded by Ilse", "Catherine", "The Long Eye.",
    ], [["Ilse Dravenko"], ["1862"], ["Ilse Dravenko"], ["cat"], ["the long eye", "long eye"]])
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
        d = paired_bootstrap("accuracy", candidate={"per_example": list(a)}, baseline={"per_example": list(b)},
                             references=refs, resamples=500, seed=rep)
        covered += d.ci_low <= 0.10 <= d.ci_high
        assert d.ci_low <= d.delta <= d.ci_high
    assert covered >= 34  # ~95% expected; 34/40 leaves room for sampling noise


def result(name, acc, tokens=50.0):
    n = 10
    correct = int(acc * n)
    preds = [Prediction(row=i, prediction="a" if i < correct else "b", reference="a") for i in range(n)]
    return EvalResult(name=name, kind="baseline", metrics={"accuracy": acc}, predictions=preds, n=n,
                      prompt_tokens_per_request=tokens, latency_ms_per_request=10, examples_per_s=100, seconds=0.1, batch_size=4)


def test_best_baseline_and_gate_rule():
    zs, fs = result("zero_shot", 0.5), result("few_shot", 0.6, tokens=300)
    assert best_baseline([zs, fs], "accuracy").name == "few_shot"
    tuned = result("tuned:lora", 0.9)

    class P:  # a PairedDelta stand-in with a chosen CI
        def __init__(self, lo, hi):
            self.delta, self.ci_low, self.ci_high, self.confidence, self.n = 0.3, lo, hi, 0.95, 10

    kw = dict(metric="accuracy", baselines=[zs, fs], tuned=tuned, costs={}, gate={"min_gain": 0.05}, provenance={})
    promoted = decide(min_gain=0.05, paired=P(0.1, 0.5), **kw)
    assert promoted.decision == "promote" and promoted.best_baseline == "few_shot"
    assert any("300 for 'few_shot'" in r for r in promoted.reasons)  # the prompt-length saving is stated
    on_edge = decide(min_gain=0.1, paired=P(0.1, 0.5), **kw)
    assert on_edge.decision == "reject"  # lower bound must *exceed* the minimum gain
    below = decide(min_gain=0.6, paired=P(0.1, 0.5), **kw)
    assert below.decision == "reject" and any("did not pay off" in r for r in below.reasons)


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
    """A/A: candidate and baseline of equal quality; the gate (lower CI end > 0) must rarely promote."""
    from tunegate.stats import paired_bootstrap

    rng = np.random.default_rng(7)
    confidence, n, trials = 0.95, 200, 200
    alpha = 1 - confidence
    same, independent, better_promoted = 0, 0, 0
    for t in range(trials):
        base = rng.random(n) < 0.7
        # the candidate IS the baseline (same predictions): delta 0 on every resample
        side = {"per_example": base.astype(float).tolist()}
        p = paired_bootstrap("accuracy", candidate=side, baseline=side, references=[0] * n, resamples=300, confidence=confidence, seed=t)
        same += p.ci_low > 0.0
        # a different model of the same true accuracy (independent errors): the harder A/A case
        other = {"per_example": (rng.random(n) < 0.7).astype(float).tolist()}
        p = paired_bootstrap("accuracy", candidate=other, baseline=side, references=[0] * n, resamples=300, confidence=confidence, seed=t)
        independent += p.ci_low > 0.0
        # and the gate is not vacuous: a truly better model (0.82 vs 0.70) gets through most of the time
        better = {"per_example": (rng.random(n) < 0.82).astype(float).tolist()}
        p = paired_bootstrap("accuracy", candidate=better, baseline=side, references=[0] * n, resamples=300, confidence=confidence, seed=t)
        better_promoted += p.ci_low > 0.0
    assert same == 0
    assert independent / trials <= alpha  # one-sided use of a two-sided 95% CI: expected ~2.5% (measured 1.5%)
    assert better_promoted / trials > 0.6  # measured 0.8
