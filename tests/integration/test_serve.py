"""`tunegate serve` over real HTTP (uvicorn on 127.0.0.1), with the tiny model and a real registry: two versions
served at once on one base, the OpenAI client, reloads."""

import json
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
from tunegate.errors import TunegateError
from tunegate.registry import Registry

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir, prefect_env):
    """One server for the module, serving toy@production (v2) and toy@1 (the reload test, which moves aliases,
    runs last)."""
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
            "--model",
            "toy@1",
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
        f"{base}/v1/completions",
        json={"prompt": "Say hi", "max_tokens": 4, "model": "toy@production", "temperature": 0},
    )
    assert c.status_code == 200
    body = c.json()
    assert body["object"] == "text_completion" and isinstance(body["choices"][0]["text"], str)
    assert 1 <= body["usage"]["completion_tokens"] <= 4 and body["usage"]["prompt_tokens"] > 0
    # the second model: named by the request; both LoRA versions on one copy of the base
    assert [m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]] == ["toy@production", "toy@1"]
    v1 = httpx.post(f"{base}/v1/predict", json={"model": "toy@1", "text": "a wonderful film"}).json()
    assert v1["model"] == "toy@v1" and v1["ref"] == "toy@1"
    assert [m["model"] for m in h["models"]] == ["toy@v2", "toy@v1"] and all(m["shares_base"] for m in h["models"])
    (held,) = h["memory"].values()  # one base model
    assert len(held["adapters"]) == 2 and 0 < held["adapter_bytes"] < held["base_bytes"] / 10


def test_concurrent_requests_for_two_versions_share_batches_and_answer_as_alone(served):
    base, _, _ = served
    texts = ["great fun", "a tedious bore", "brilliant acting", "dull and slow", "what a joy", "I hated it"]
    alone = {
        m: [httpx.post(f"{base}/v1/predict", json={"model": m, "text": t}).json()["predictions"][0] for t in texts]
        for m in ("toy@production", "toy@1")
    }
    before = httpx.get(f"{base}/health").json()["mixed_batches"]
    got: dict = {}

    def ask(m, i):
        got[m, i] = httpx.post(f"{base}/v1/predict", json={"model": m, "text": texts[i]}, timeout=60).json()

    threads = [threading.Thread(target=ask, args=(m, i)) for i in range(len(texts)) for m in alone]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert httpx.get(f"{base}/health").json()["mixed_batches"] > before  # v1 and v2 rows in one forward
    for (m, i), r in got.items():
        (p,) = r["predictions"]
        assert p["label"] == alone[m][i]["label"]
        assert p["probabilities"] == pytest.approx(alone[m][i]["probabilities"], abs=1e-4)


def test_the_openai_client_lists_completes_streams_and_reads_errors(served):
    import openai

    base, _, log = served
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="not-checked", max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["toy@production", "toy@1"]
    assert client.models.retrieve("toy@1").id == "toy@1"
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}]
    chat = client.chat.completions.create(model="toy@1", messages=msgs, max_tokens=5)
    answer = chat.choices[0].message
    assert chat.model == "toy@1" and answer.role == "assistant" and 1 <= chat.usage.completion_tokens <= 5
    # streamed: the pieces add up to the same (greedy) answer, one chunk says why it ended, then the usage
    chunks = list(
        client.chat.completions.create(
            model="toy@1", messages=msgs, max_tokens=5, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        chat.choices[0].finish_reason
    ]
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    # completions: a stop string cuts the text before it and ends the generation
    full = client.completions.create(model="toy@production", prompt="Once upon a time", max_tokens=12).choices[0]
    assert len(full.text) >= 4, full.text
    stop = full.text[len(full.text) // 2 :][:2]
    cut = client.completions.create(model="toy@production", prompt="Once upon a time", max_tokens=12, stop=[stop])
    assert cut.choices[0].text == full.text[: full.text.find(stop)] and cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(
        model="toy@production", prompt="Once upon a time", max_tokens=12, stop=[stop], stream=True
    )
    assert "".join(c.choices[0].text for c in streamed) == cut.choices[0].text
    # sampling: temperature with a seed repeats itself
    sampled = [
        client.completions.create(model="toy@1", prompt="Hi", max_tokens=6, temperature=1.0, seed=7).choices[0].text
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]
    # errors: OpenAI's shape, read by the client as its own exceptions
    with pytest.raises(openai.NotFoundError, match="not served here"):
        client.chat.completions.create(model="gpt-4o", messages=msgs)
    with pytest.raises(openai.BadRequestError, match="n: Input should be less than or equal to 1"):
        client.chat.completions.create(model="toy@1", messages=msgs, n=2)
    assert "Traceback" not in log.read_text()


BAD = [
    ("post", "/v1/predict", {}, 400),
    ("post", "/v1/predict", {"text": ""}, 400),
    ("post", "/v1/predict", {"text": 5}, 400),
    ("post", "/v1/predict", {"text": "a", "texts": ["b"]}, 400),
    ("post", "/v1/predict", {"texts": []}, 400),
    ("post", "/v1/predict", {"texts": ["ok", "  "]}, 400),
    ("post", "/v1/predict", {"texts": ["x"] * 65}, 400),
    ("post", "/v1/predict", {"text": "x" * 20001}, 400),
    ("post", "/v1/predict", {"text": "ok", "extra": 1}, 400),
    ("post", "/v1/predict", b"{not json", 400),
    ("post", "/v1/completions", {"prompt": "hi", "max_tokens": 0}, 400),
    ("post", "/v1/completions", {"max_tokens": 5}, 400),
    ("post", "/v1/chat/completions", {"messages": []}, 400),
    ("post", "/v1/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, 400),
    ("post", "/v1/predict", {"model": "nope", "text": "x"}, 404),
    ("post", "/v1/completions", {"prompt": "hi", "stop": ["a", "b", "c", "d", "e"]}, 400),
    ("post", "/v1/completions", {"prompt": "hi", "temperature": 3}, 400),
    ("post", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400),
    ("post", "/v1/chat/completions", {"messages": [{"role": "tool", "content": "hi"}]}, 400),
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
    err = r.json()["error"]  # OpenAI's shape
    assert (
        err["type"] in ("invalid_request_error", "server_error") and err["message"] and "code" in err and "param" in err
    )
    assert "Traceback" not in r.text
    assert "Traceback" not in log.read_text()


def test_shadow_canary_request_log_feedback_automatic_rollback_and_the_report(served, tmp_path):
    """On a copy of the registry, in process: toy@production (v2) with toy@1 as its shadow and as a 30% canary, a
    log that rotates every ~1 kB, and serve.rollback_if; feedback that proves v2 wrong rolls production back to v1,
    audited, and the slot reloads; `tunegate shadow report` reads it all."""
    import shutil

    from fastapi.testclient import TestClient

    from tunegate.audit import AuditLog
    from tunegate.cli import main
    from tunegate.config.serve import ServeConfig
    from tunegate.serving import create_app
    from tunegate.traffic.log import read_feedback, read_requests

    _, reg, _ = served
    root = tmp_path / "registry"
    shutil.copytree(reg.root, root, ignore=shutil.ignore_patterns("_traffic"))
    serve_cfg = ServeConfig(log_rotate_mb=1000 / 2**20, rollback_if={"below": 0.99, "min_feedback": 5})
    app = create_app(
        root, ["toy@production"], shadows=["toy@1"], canaries=["toy@1:0.3"], serve_config=serve_cfg, seed=0
    )
    texts = [t for texts in TOPICS.values() for t in texts]
    with TestClient(app) as client:
        answers = [client.post("/v1/predict", json={"text": t}).json() for t in texts]
        routes = [a["route"] for a in answers]
        assert 2 <= routes.count("canary") <= 9 and set(routes) == {"production", "canary"}
        assert {a["model"] for a in answers if a["route"] == "canary"} == {"toy@v1"}
        assert {a["model"] for a in answers if a["route"] == "production"} == {"toy@v2"}
        folder = root / "_traffic" / "toy"
        deadline = time.monotonic() + 30
        while len(read_requests(folder)) < len(texts):  # a shadowed request is logged once its shadow answered
            assert time.monotonic() < deadline
            time.sleep(0.1)
        logged = read_requests(folder)
        assert len(list(folder.glob("requests-*.jsonl"))) >= 2  # rotated, nothing lost
        assert [r["id"] for r in logged] == [a["predictions"][0]["id"] for a in answers]
        for r, a in zip(logged, answers):
            assert r["version"] == a["model"] and r["answer"] == a["predictions"][0]["label"]
            assert (r["shadow"] is not None) == (r["route"] == "production")
            if r["shadow"]:
                assert r["shadow"]["version"] == "toy@v1" and r["shadow"]["answer"] in ("pos", "neg")
        # feedback: unknown ids and labels are refused; the truth that v2 is wrong rolls production back
        assert client.post("/v1/feedback", json={"id": "nope", "label": "pos"}).status_code == 404
        first = next(a for a in answers if a["route"] == "production")["predictions"][0]
        assert client.post("/v1/feedback", json={"id": first["id"], "label": "maybe"}).status_code == 400
        events = []
        for a in answers:
            p = a["predictions"][0]
            wrong = "neg" if p["label"] == "pos" else "pos"
            r = client.post("/v1/feedback", json={"id": p["id"], "label": wrong}).json()
            events.append(r.get("rollback"))
        rolled = [e for e in events if e and e["rolled_back"]]
        assert len(rolled) == 1 and rolled[0]["from"] == "v2" and rolled[0]["to"] == "v1"
        assert "below 0.990" in rolled[0]["reason"]
        assert Registry(root).aliases("toy")["production"] == 1
        health = client.get("/health").json()
        assert health["model"] == "toy@v1" and health["traffic"]["rolled_back"][0]["to"] == "v1"
        record = AuditLog(root).records()[-1]
        assert record.status == "rollback" and record.trigger == "tunegate serve rollback_if"
        assert record.deployed["live"]["n"] >= 5 and record.deployed["to"] == 1
        assert len(read_feedback(folder)) == len(texts)
    assert main(["shadow", "report", "toy", "--registry", str(root), "--min-feedback", "5"]) == 0
    report = json.loads((folder / "shadow_report.json").read_text())
    (pair,) = report["shadows"]
    assert pair["champion"] == "toy@v2" and pair["challenger"] == "toy@v1" and 0 <= pair["agreement"] <= 1
    assert report["versions"]["toy@v2"]["live"]["value"] == 0.0  # every answer of v2 was marked wrong
    assert "## Drift" in (folder / "shadow_report.md").read_text()
    # serve.log_inputs: false keeps no text; a --canary/--shadow must challenge a served production slot
    private = ServeConfig(log_inputs=False, log_dir=tmp_path / "private")
    with TestClient(create_app(root, ["toy@production"], serve_config=private)) as client:
        client.post("/v1/predict", json={"text": "my secret review"})
    (line,) = read_requests(tmp_path / "private" / "toy")
    assert line["input"] is None and "secret" not in (tmp_path / "private" / "toy" / "requests.jsonl").read_text()
    with pytest.raises(TunegateError, match="not served; add --model toy@production"):
        create_app(root, ["toy@1"], shadows=["toy@2"])


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
        r = httpx.post(f"{base}/admin/reload", params={"model": "toy@production"}, timeout=60)
        assert r.status_code == 200 and r.json()["model"] == "toy@v2"
        time.sleep(1)
        assert httpx.post(f"{base}/admin/reload").json()["reloaded"] is False  # nothing new, for either model
        # 3. production moved to a version whose files changed: the reload is refused, v2 keeps serving
        weights = next(p for p in (reg.get("toy", 1).path / "artifact").rglob("*.safetensors"))
        weights.chmod(0o644)
        weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
        reg.set_alias("toy", "production", 1)
        bad = httpx.post(f"{base}/admin/reload", params={"model": "toy@production"}, timeout=60)
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
