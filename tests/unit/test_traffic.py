"""Live traffic without a model (tunegate/traffic/, stats.confidence_sequence): the request log, the always-valid
test, the shadow comparison's verdicts and the drift score on real data."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tunegate import stats
from tunegate.traffic.drift import drift_report, token_drift
from tunegate.traffic.log import RequestLog, read_feedback, read_requests
from tunegate.traffic.shadow import compare_shadow

DATA = SHARED_DATA


def test_the_log_appends_rotates_skips_a_torn_line_and_can_leave_the_text_out(tmp_path):
    log = RequestLog(tmp_path / "toy", rotate_mb=600 / 2**20)  # rotate every ~600 bytes
    for i in range(12):
        log.request(text=f"input number {i}", id=f"r{i}", version="toy@v1", answer="pos")
    files = sorted((tmp_path / "toy").glob("requests*.jsonl"))
    assert len(files) > 2 and log.requests.rotations == len(files) - 1
    assert all(f.stat().st_size <= 600 for f in files)
    with open(tmp_path / "toy" / "requests.jsonl", "a") as f:
        f.write('{"id": "torn", "ans')  # a crash mid-line
    got = read_requests(tmp_path / "toy")
    assert [r["id"] for r in got] == [f"r{i}" for i in range(12)]  # in order, across the rotated files
    assert got[3]["input"] == "input number 3" and got[3]["input_chars"] == 14
    log.add_feedback("r3", label="neg")
    log.add_feedback("r3", label="pos")  # the latest wins
    assert read_feedback(tmp_path / "toy")["r3"]["label"] == "pos"
    private = RequestLog(tmp_path / "private", log_inputs=False)
    private.request(text="my account number is 1234", id="p1", answer="neg")
    line = json.loads((tmp_path / "private" / "requests.jsonl").read_text())
    assert line["input"] is None and len(line["input_sha256"]) == 64 and line["input_chars"] == 25
    assert "1234" not in (tmp_path / "private" / "requests.jsonl").read_text()


def test_the_confidence_sequence_stays_valid_when_checked_after_every_row_and_finds_a_real_gap():
    rng = np.random.default_rng(0)
    alarms = 0
    for _ in range(200):  # no difference: checking after every 5 rows up to 400 rarely ever excludes 0
        d = rng.choice([-1.0, 0.0, 1.0], p=[0.15, 0.7, 0.15], size=400)
        alarms += any(
            not (cs.low <= 0 <= cs.high) for cs in (stats.confidence_sequence(d[:n]) for n in range(10, 401, 5))
        )
    assert alarms / 200 <= 0.05
    # a fixed-n 95% interval checked as often would alarm far more (the reason for the sequence)
    naive = 0
    for _ in range(200):
        d = rng.choice([-1.0, 0.0, 1.0], p=[0.15, 0.7, 0.15], size=400)
        naive += any(abs(d[:n].mean()) > 1.96 * d[:n].std(ddof=1) / np.sqrt(n) for n in range(10, 401, 5))
    assert naive / 200 > 0.15
    worse = rng.choice([-1.0, 0.0, 1.0], p=[0.25, 0.7, 0.05], size=400)  # the challenger loses 20 points
    cs = stats.confidence_sequence(worse, bounds=(-1, 1))
    assert cs.high < 0 and -1 <= cs.low


def _rows(champion, challenger, labels):
    return [
        {"id": f"r{i}", "version": "toy@v2", "answer": a, "shadow": {"version": "toy@v3", "answer": b}}
        for i, (a, b) in enumerate(zip(champion, challenger))
    ], {f"r{i}": {"id": f"r{i}", "label": lab} for i, lab in enumerate(labels)}


FACTS = {"task": "classification", "answers": "labels", "metric": "accuracy"}


def test_the_shadow_verdict_refuses_a_worse_challenger_keeps_an_equal_one_and_waits_for_feedback():
    rng = np.random.default_rng(1)
    truth = rng.choice(["pos", "neg"], size=300).tolist()
    flip = {"pos": "neg", "neg": "pos"}
    champion = [t if rng.random() < 0.9 else flip[t] for t in truth]
    worse = [t if rng.random() < 0.7 else flip[t] for t in truth]
    rows, feedback = _rows(champion, worse, truth)
    out = compare_shadow(rows, feedback, facts=FACTS, alpha=0.05, min_feedback=30)
    assert out["verdict"].startswith("challenger WORSE") and out["sequence"]["high"] < 0
    assert out["challenger_value"] < out["champion_value"] and out["mcnemar"]["p"] < 0.01
    assert out["bootstrap"]["ci_high"] < 0 and 0 < out["agreement"] < 1
    rows, feedback = _rows(champion, list(champion), truth)  # the same answers
    out = compare_shadow(rows, feedback, facts=FACTS, alpha=0.05, min_feedback=30)
    assert out["verdict"].startswith("no difference detected") and out["agreement"] == 1.0
    few = {k: v for k, v in list(feedback.items())[:10]}
    assert compare_shadow(rows, few, facts=FACTS, alpha=0.05, min_feedback=30)["verdict"].startswith("too little")
    assert compare_shadow(rows, {}, facts=FACTS, alpha=0.05, min_feedback=30)["verdict"].startswith("no feedback")


def _tsv(path: Path, n: int, skip: int = 0) -> list[str]:
    return [ln.split("\t")[0] for ln in path.read_text().splitlines()[1 + skip : 1 + skip + n]]


def test_drift_is_near_zero_for_the_same_distribution_and_past_the_threshold_for_another_domain():
    reference = _tsv(DATA / "sst2" / "test.tsv", 200)
    same = _tsv(DATA / "sst2" / "test.tsv", 200, skip=300)
    sms = [
        ln.split("\t", 1)[1]
        for ln in (DATA / "sms_spam" / "SMSSpamCollection").read_text(errors="replace").splitlines()[:200]
    ]
    assert token_drift(same, reference)["score"] < 0.05
    moved = token_drift(sms, reference)
    assert moved["score"] > 0.1 and moved["p_value"] < 0.05
    report = drift_report(
        served_texts=sms, served_chars=[len(t) for t in sms], predicted=["1"] * 200,
        eval_texts=reference, eval_labels=["0", "1"] * 100, threshold=0.1,
    )  # fmt: skip
    assert report["drifted"] is True and report["labels"]["tvd"] == pytest.approx(0.5)
    blind = drift_report(
        served_texts=[None] * 3, served_chars=[10, 20, 30], predicted=None, eval_texts=reference, eval_labels=None,
        threshold=0.1,
    )  # fmt: skip
    assert blind["drifted"] is None and "log_inputs" in blind["note"] and blind["length"]["ks"] > 0
