"""`tunegate serve` over real HTTP (uvicorn on 127.0.0.1), with the tiny model and a real registry."""

import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.conftest import TOPICS, make_config, pipeline_run, write_csv
from tests.integration.conftest import free_port, stop
from tunegate import promotion
from tunegate.config import load_config
from tunegate.registry import Registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir, prefect_env):
    """One server for the module (the reload test, which moves aliases, runs last)."""
    tmp_path = tmp_path_factory.mktemp("serve")
    toy_data = {
        "train": write_csv(tmp_path / "train.csv", [(t, lab) for lab, texts in TOPICS.items() for t in texts[:7]]),
        "eval": write_csv(tmp_path / "eval.csv", [(t, lab) for lab, texts in TOPICS.items() for t in texts[7:]]),
    }
    cfg = load_config(
        make_config(
            tmp_path,
            tiny_model_dir,
            toy_data,
            gate={"min_gain": -1.0, "mcnemar": False, "bootstrap_samples": 100},
            baselines={"few_shot": {"enabled": False}, "retrieved_few_shot": {"enabled": False}, "calibrated": False},
        )
    )
    pipeline_run(cfg)
    pipeline_run(cfg)  # v1, then v2 promoted over it
    reg = Registry(cfg.registry.path)
    assert reg.resolve("toy@production").version == 2
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunegate.cli",
            "serve",
            "--model",
            "toy@production",
            "--registry",
            str(reg.root),
            "--port",
            str(port),
            "--watch-seconds",
            "0.5",
        ],
        env=prefect_env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("tunegate serve did not come up:\n" + (tmp_path / "serve.log").read_text()[-3000:])
            time.sleep(0.5)
        yield base, reg, tmp_path / "serve.log"
    finally:
        stop(proc)
        log.close()
    # SIGTERM stops a server, not a pipeline run: the message says so
    text = (tmp_path / "serve.log").read_text()
    assert "the run was cancelled" not in text, text[-2000:]
    assert "STOPPED (SIGTERM)" not in text or "the server stopped" in text, text[-2000:]


def test_health_predict_and_completions(served):
    base, reg, _ = served
    h = httpx.get(f"{base}/health").json()
    assert (
        h["model"] == "toy@v2"
        and h["ref"] == "toy@production"
        and h["task"] == "classification"
        and h["labels"] == ["pos", "neg"]
    )
    r = httpx.post(f"{base}/v1/predict", json={"text": "a wonderful film"})
    assert r.status_code == 200
    (p,) = r.json()["predictions"]
    assert p["label"] in ("pos", "neg") and sum(p["probabilities"].values()) == pytest.approx(1.0)
    assert p["label"] == max(p["probabilities"], key=p["probabilities"].get)
    many = httpx.post(f"{base}/v1/predict", json={"texts": ["great fun", "a tedious bore", "x " * 3000]}).json()
    assert len(many["predictions"]) == 3 and many["model"] == "toy@v2"  # an over-long input is cut to the length budget
    c = httpx.post(
        f"{base}/v1/completions", json={"prompt": "Say hi", "max_tokens": 4, "model": "ignored", "temperature": 0}
    )
    assert c.status_code == 200
    body = c.json()
    assert body["object"] == "text_completion" and isinstance(body["choices"][0]["text"], str)
    assert 1 <= body["usage"]["completion_tokens"] <= 4 and body["usage"]["prompt_tokens"] > 0


BAD = [
    ("post", "/v1/predict", {}, 422),
    ("post", "/v1/predict", {"text": ""}, 422),
    ("post", "/v1/predict", {"text": 5}, 422),
    ("post", "/v1/predict", {"text": "a", "texts": ["b"]}, 422),
    ("post", "/v1/predict", {"texts": []}, 422),
    ("post", "/v1/predict", {"texts": ["ok", "  "]}, 422),
    ("post", "/v1/predict", {"texts": ["x"] * 65}, 422),
    ("post", "/v1/predict", {"text": "x" * 20001}, 422),
    ("post", "/v1/predict", {"text": "ok", "extra": 1}, 422),
    ("post", "/v1/predict", b"{not json", 422),
    ("post", "/v1/completions", {"prompt": "hi", "max_tokens": 0}, 422),
    ("post", "/v1/completions", {"max_tokens": 5}, 422),
    ("post", "/v1/chat/completions", {"messages": []}, 422),
    ("post", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 422),
    ("get", "/v1/predict", None, 405),
    ("get", "/nope", None, 404),
]


@pytest.mark.parametrize("method,path,body,status", BAD, ids=[f"{m} {p} {str(b)[:30]}" for m, p, b, _ in BAD])
def test_bad_requests_get_a_json_4xx(served, method, path, body, status):
    base, _, log = served
    kwargs = {}
    if isinstance(body, bytes):
        kwargs = {"content": body, "headers": {"content-type": "application/json"}}
    elif body is not None:
        kwargs = {"json": body}
    r = httpx.request(method.upper(), f"{base}{path}", **kwargs)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["type"] and err["message"] and "Traceback" not in r.text
    assert "Traceback" not in log.read_text()


def test_alias_moves_and_reloads_do_not_drop_requests(served):
    base, reg, log = served
    results, stop = [], threading.Event()

    def load():
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(f"{base}/v1/predict", json={"text": "brilliant acting"})
                results.append((r.status_code, r.json().get("model")))

    workers = [threading.Thread(target=load) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(1)
        # 1. the alias moves (a rollback): the watcher notices and switches, no call needed
        promotion.rollback(reg, "toy", reason="test")
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/health").json()["model"] != "toy@v1":
            assert time.monotonic() < deadline, "the server did not follow the alias within 30 s"
            time.sleep(0.2)
        time.sleep(1)
        # 2. promote again, with the watcher racing an explicit reload: one of them switches, both answer 200
        promotion.promote(reg, "toy", 2, tolerance=0.005)
        r = httpx.post(f"{base}/admin/reload", timeout=60)
        assert r.status_code == 200 and r.json()["model"] == "toy@v2"
        time.sleep(1)
        assert httpx.post(f"{base}/admin/reload").json()["reloaded"] is False  # nothing new
        # 3. production moved to a version whose files changed: the reload is refused, v2 keeps serving
        weights = next(p for p in (reg.get("toy", 1).path / "artifact").rglob("*.safetensors"))
        weights.chmod(0o644)
        weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
        reg.set_alias("toy", "production", 1)
        bad = httpx.post(f"{base}/admin/reload", timeout=60)
        assert (
            bad.status_code == 409
            and "files changed" in bad.json()["error"]["message"]
            and "still serving toy@v2" in bad.json()["error"]["message"]
        )
        time.sleep(1)
    finally:
        stop.set()
        for w in workers:
            w.join()
    statuses = [s for s, _ in results]
    models = [m for _, m in results]
    assert len(results) > 20 and set(statuses) == {200}, f"{len(results)} requests, statuses {set(statuses)}"
    assert models[0] == "toy@v2" and "toy@v1" in models and models[-1] == "toy@v2"
    assert httpx.get(f"{base}/health").json()["reloads"] == 2
