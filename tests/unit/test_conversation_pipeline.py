"""Conversation files through validation and every stage (tiny model): bad lines named, the last assistant
turn judged, the trained turns chosen by data.train_on."""

import json

import yaml

from tests.conftest import make_config, pipeline_run
from tunegate.config import load_config
from tunegate.conversations import conversation_targets
from tunegate.validation import validate

PRODUCTS = ["card", "loan", "account", "transfer", "pin", "app", "fee", "limit"]


def _conv(i: int, product: str, turns: int = 2) -> dict:
    msgs = [{"role": "system", "content": "You are a bank's support agent."}]
    for t in range(turns):
        msgs.append({"role": "user", "content": f"question {t} about my {product}, case {i}"})
        weight = {"weight": 0} if t == 0 else {}
        msgs.append({"role": "assistant", "content": f"about your {product}: step {t}", **weight})
    return {"messages": msgs}


def _files(tmp_path, bad: list | None = None):
    train = [_conv(i, PRODUCTS[i % 8]) for i in range(16)]
    evl = [_conv(100 + i, PRODUCTS[i % 8]) for i in range(6)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train + (bad or [])) + "\n")
    (tmp_path / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in evl) + "\n")
    return {"train": tmp_path / "train.jsonl", "eval": tmp_path / "eval.jsonl"}


def _config(tmp_path, model, files, method: dict | None = None, **data):
    return make_config(
        tmp_path,
        model,
        files,
        task="generation",
        data={"labels": None, **data},
        gate={"bootstrap_samples": 200, "metric": "rouge_l"},
        baselines={"zero_shot": True, "few_shot": {"k": 1}, "batch_size": 4, "max_new_tokens": 8},
        **({"method": method} if method else {}),
    )


def test_bad_conversation_lines_are_named_and_good_files_validate(tmp_path, tiny_model_dir, tiny_tokenizer):
    bad = [{"messages": [{"role": "user", "content": "hi"}]}, {"messages": [{"role": "robot", "content": "x"}]}]
    cfg = load_config(_config(tmp_path, tiny_model_dir, _files(tmp_path, bad)))
    out = validate(cfg, tiny_tokenizer)
    found = {i.check: i for i in out.errors}
    assert found["no_assistant_turn"].rows == [17] and found["unknown_role"].rows == [18]
    assert "line 18: turn 1 has role 'robot'" in found["unknown_role"].message
    cfg = load_config(_config(tmp_path, tiny_model_dir, _files(tmp_path)))
    out = validate(cfg, tiny_tokenizer)
    assert out.ok, out.summary()
    assert out.stats["conversation_format"] == "messages" and out.stats["tokens"]["train"]["mean"] > 20
    # token counts per split, and the training tokens up front (train total x epochs)
    assert out.stats["training_tokens"] == out.stats["tokens"]["train"]["total"] > 16 * 20
    # the judged turn is the last one; its prompt holds every earlier turn
    row = out.eval.row(0, named=True)
    assert row["target"] == "about your card: step 1"
    assert json.loads(row["input"])[-1]["content"].startswith("question 1")
    # last: one example per conversation; all: every weighted assistant turn (the weight-0 first answer never)
    assert len(conversation_targets(out.train, "last")) == 16
    assert len(conversation_targets(out.train, "all")) == 16
    assert [a for _, a in conversation_targets(out.train.head(1), "all")] == ["about your card: step 1"]


def test_training_tokens_count_every_trained_turn(tmp_path, tiny_model_dir, tiny_tokenizer):
    """train_on: all trains one example per weighted assistant turn (each with the turns before it): the estimate
    up front counts those examples, not one per conversation."""
    train = [_conv(i, PRODUCTS[i % 8], turns=3) for i in range(16)]  # turns 1 and 2 are weighted
    files = _files(tmp_path)
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in train) + "\n")
    long = {"max_length": 512}  # nothing cut to the limit
    last = validate(load_config(_config(tmp_path, tiny_model_dir, files, long, train_on="last")), tiny_tokenizer)
    every = validate(load_config(_config(tmp_path, tiny_model_dir, files, long, train_on="all")), tiny_tokenizer)
    assert last.ok and every.ok
    assert last.stats["training_examples"] == 16 and every.stats["training_examples"] == 32
    assert last.stats["training_tokens"] == last.stats["tokens"]["train"]["total"]
    # the extra examples are the middle turns: shorter than the last one's, so less than double
    assert last.stats["training_tokens"] < every.stats["training_tokens"] < 2 * last.stats["training_tokens"]


def test_a_conversation_run_goes_through_every_stage(tmp_path, tiny_model_dir):
    cfg = load_config(_config(tmp_path, tiny_model_dir, _files(tmp_path), train_on="all"))
    run, decision, deployed = pipeline_run(cfg)
    assert set(decision.baselines) == {"zero_shot", "few_shot", "retrieved_few_shot_hybrid"}
    assert "rouge_l" in decision.tuned and decision.decision in ("promote", "reject")
    resolved = yaml.safe_load((tmp_path / "runs" / run.run_id / "config.yaml").read_text())
    assert resolved["data"]["format"] == "messages"  # 'auto' recognised, recorded for serving and re-scoring

    # served: OpenAI-style chat completions answer the whole conversation, as it was judged
    from fastapi.testclient import TestClient

    from tunegate.serving import create_app

    version = deployed.registered_version
    with TestClient(create_app(tmp_path / "registry", f"toy@v{version}")) as client:
        msgs = [{"role": "user", "content": "question 0 about my card"}, {"role": "assistant", "content": "ok"}]
        r = client.post(
            "/v1/chat/completions",
            json={
                "messages": [*msgs, {"role": "user", "content": "and?"}],
                "max_tokens": 3,
                "model": f"toy@v{version}",
            },
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
        assert 1 <= body["usage"]["completion_tokens"] <= 3 and body["usage"]["prompt_tokens"] > 10
        bad = client.post("/v1/chat/completions", json={"messages": msgs})  # ends with the assistant
        assert bad.status_code == 400 and "end with a non-empty user turn" in bad.text

    # `tunegate predict`: a JSON line in the training file's shape (its last assistant turn is what gets answered)
    # or plain text (one user turn)
    from tunegate.inference import load_predictor, predict

    predictor = load_predictor(tmp_path / "registry", f"toy@v{version}")
    line = json.dumps({"messages": [*msgs, {"role": "user", "content": "and?"}, {"role": "assistant", "content": "x"}]})
    out = predict(predictor, [line, "my card is lost"])
    assert len(out) == 2 and all(isinstance(r["output"], str) for r in out)
