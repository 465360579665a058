"""The one inference thread of a server: first come first served, queued predict requests batched together."""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from typing import Any

from tunegate.inference import Predictor, mix_key, predict_together


class InferenceQueue:
    """One inference thread, first come first served, with dynamic batching of /v1/predict.

    Torch gets both cores for one forward pass at a time (a plain Lock is not fair: under
    load some requests waited 17x the median). Predict requests that queue up while a
    batch runs are scored together in the next one, up to ``max_texts`` inputs: requests for
    the same version, and requests for different versions of one shared base with the same
    answers (each row with its own adapter, ``inference.predict_together``). On 2 cores one
    8-text forward costs about 2.5 single ones.
    """

    def __init__(self, max_texts: int = 32):
        self.max_texts = max_texts
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        self.mixed_batches = 0  # batches that held more than one version
        self._keys: dict[int, tuple | None] = {}
        threading.Thread(target=self._loop, daemon=True, name="inference").start()

    def submit(self, fn, *args, **kwargs) -> concurrent.futures.Future:
        """Run ``fn`` on the inference thread; its future (a streamed generation reads its output meanwhile)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(("call", (fn, args, kwargs), fut))
        return fut

    def call(self, fn, *args, **kwargs):
        return self.submit(fn, *args, **kwargs).result()

    def predict_async(self, predictor: Predictor, texts: list[str]) -> concurrent.futures.Future:
        """Queue a predict job; its future (a shadow's is read after the answer went out)."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(("predict", (predictor, texts), fut))
        return fut

    def predict(self, predictor: Predictor, texts: list[str]) -> list[dict[str, Any]]:
        return self.predict_async(predictor, texts).result()

    def _key(self, p) -> tuple | None:
        k = id(p)
        if k not in self._keys:
            self._keys[k] = mix_key(p)
        return self._keys[k]

    def _fits(self, first, other) -> bool:
        return other is first or (self._key(first) is not None and self._key(first) == self._key(other))

    def _loop(self) -> None:
        carry = None
        while True:
            job = carry or self.jobs.get()
            carry = None
            kind, payload, fut = job
            if kind == "call":
                self._run(fut, *payload)
                continue
            batch = [job]
            n = len(payload[1])
            while n < self.max_texts:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt[0] == "predict" and self._fits(payload[0], nxt[1][0]) and n + len(nxt[1][1]) <= self.max_texts:
                    batch.append(nxt)
                    n += len(nxt[1][1])
                else:
                    carry = nxt
                    break
            self._predict(batch)

    def _predict(self, batch: list) -> None:
        """One batch: each version's texts together, the versions in one pass; answers split back per request."""
        order: dict[int, tuple[Any, list[str]]] = {}
        for _, (p, texts), _ in batch:
            order.setdefault(id(p), (p, []))[1].extend(texts)
        try:
            answers = predict_together(list(order.values()))
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error
            for _, _, f in batch:
                f.set_exception(exc)
            return
        self.batches += 1
        self.mixed_batches += len(order) > 1
        taken = {k: 0 for k in order}
        by_version = dict(zip(order, answers))
        for _, (p, texts), f in batch:
            i = taken[id(p)]
            f.set_result(by_version[id(p)][i : i + len(texts)])
            taken[id(p)] = i + len(texts)

    def forget(self, predictor) -> None:
        """A version no longer served (its mixing key is not kept)."""
        self._keys.pop(id(predictor), None)

    @staticmethod
    def _run(fut, fn, args, kwargs) -> None:
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the request's thread
            fut.set_exception(exc)
