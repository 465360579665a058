"""The serving inference queue: first come first served, concurrent predict requests batched (no model needed)."""

import threading
import time

from tunegate.serving import batching


def fake_together(seen):
    def together(jobs):  # stands in for the models: records each batch it is given, per version
        seen.append([(p, list(texts)) for p, texts in jobs])
        return [[{"input": t, "label": t.upper()} for t in texts] for _, texts in jobs]

    return together


def test_queued_predicts_are_batched_in_order_and_split_back(monkeypatch):
    seen = []
    monkeypatch.setattr(batching, "predict_together", fake_together(seen))
    monkeypatch.setattr(batching, "mix_key", lambda p: None)
    q = batching.InferenceQueue(max_texts=4)
    p = object()
    blocker = threading.Thread(target=q.call, args=(time.sleep, 0.5))  # keeps the inference thread busy
    blocker.start()
    time.sleep(0.1)
    out = {}

    def ask(name, texts):
        out[name] = q.predict(p, texts)

    threads = []
    for name, texts in [("a", ["a1"]), ("b", ["b1", "b2"]), ("c", ["c1"]), ("d", ["d1", "d2"])]:
        threads.append(threading.Thread(target=ask, args=(name, texts)))
        threads[-1].start()
        time.sleep(0.02)  # arrival order a, b, c, d
    for t in [blocker, *threads]:
        t.join()
    assert seen == [[(p, ["a1", "b1", "b2", "c1"])], [(p, ["d1", "d2"])]]  # 4 texts max per batch, in arrival order
    assert out == {
        "a": [{"input": "a1", "label": "A1"}],
        "b": [{"input": "b1", "label": "B1"}, {"input": "b2", "label": "B2"}],
        "c": [{"input": "c1", "label": "C1"}],
        "d": [{"input": "d1", "label": "D1"}, {"input": "d2", "label": "D2"}],
    }
    assert q.batches == 2


def test_an_error_reaches_every_request_of_its_batch_and_the_queue_goes_on(monkeypatch):
    calls = []

    def flaky(jobs):
        calls.append(jobs)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [[{"input": t} for t in texts] for _, texts in jobs]

    monkeypatch.setattr(batching, "predict_together", flaky)
    monkeypatch.setattr(batching, "mix_key", lambda p: None)
    q = batching.InferenceQueue()
    try:
        q.predict(object(), ["x"])
        raise AssertionError("expected the error")
    except RuntimeError as exc:
        assert str(exc) == "boom"
    assert q.predict(object(), ["y"]) == [{"input": "y"}]
    assert q.call(lambda a, b: a + b, 2, 3) == 5


def test_versions_that_can_share_a_forward_share_a_batch_and_others_wait_their_turn(monkeypatch):
    """Two versions on one base with the same answers (same mixing key) go in one batch, each with its own texts;
    a version with another key starts the next batch."""
    seen = []
    champion, challenger, other = object(), object(), object()
    keys = {id(champion): ("base", "labels"), id(challenger): ("base", "labels"), id(other): None}
    monkeypatch.setattr(batching, "predict_together", fake_together(seen))
    monkeypatch.setattr(batching, "mix_key", lambda p: keys[id(p)])
    q = batching.InferenceQueue(max_texts=8)
    blocker = threading.Thread(target=q.call, args=(time.sleep, 0.5))
    blocker.start()
    time.sleep(0.1)
    out = {}
    threads = []
    for name, p, texts in [
        ("a", champion, ["a1"]),
        ("b", challenger, ["b1"]),
        ("c", champion, ["c1"]),
        ("d", other, ["d1"]),
    ]:
        threads.append(threading.Thread(target=lambda n=name, p=p, t=texts: out.__setitem__(n, q.predict(p, t))))
        threads[-1].start()
        time.sleep(0.02)
    for t in [blocker, *threads]:
        t.join()
    assert seen == [[(champion, ["a1", "c1"]), (challenger, ["b1"])], [(other, ["d1"])]]
    assert out == {k: [{"input": f"{k}1", "label": f"{k.upper()}1"}] for k in "abcd"}
    assert q.batches == 2 and q.mixed_batches == 1
