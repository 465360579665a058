"""The serving inference queue: first come first served, concurrent predict requests batched (no model needed)."""

import threading
import time

import tunegate.serving as serving


def test_queued_predicts_are_batched_in_order_and_split_back(monkeypatch):
    seen = []

    def fake_predict(predictor, texts):  # stands in for the model: records each batch it is given
        seen.append(list(texts))
        return [{"input": t, "label": t.upper()} for t in texts]

    monkeypatch.setattr(serving, "predict", fake_predict)
    q = serving.InferenceQueue(max_texts=4)
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
    assert seen == [["a1", "b1", "b2", "c1"], ["d1", "d2"]]  # 4 texts max per batch, in arrival order
    assert out == {
        "a": [{"input": "a1", "label": "A1"}],
        "b": [{"input": "b1", "label": "B1"}, {"input": "b2", "label": "B2"}],
        "c": [{"input": "c1", "label": "C1"}],
        "d": [{"input": "d1", "label": "D1"}, {"input": "d2", "label": "D2"}],
    }
    assert q.batches == 2


def test_an_error_reaches_every_request_of_its_batch_and_the_queue_goes_on(monkeypatch):
    calls = []

    def flaky(predictor, texts):
        calls.append(texts)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return [{"input": t} for t in texts]

    monkeypatch.setattr(serving, "predict", flaky)
    q = serving.InferenceQueue()
    try:
        q.predict(object(), ["x"])
        raise AssertionError("expected the error")
    except RuntimeError as exc:
        assert str(exc) == "boom"
    assert q.predict(object(), ["y"]) == [{"input": "y"}]
    assert q.call(lambda a, b: a + b, 2, 3) == 5
