"""Answering new inputs with a registered model (``tunegate predict`` and ``tunegate serve``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate import answering, prompt_versions
from tunegate.answering import AnswerSpec
from tunegate.errors import TunegateError
from tunegate.methods import TuningMethod, get_method
from tunegate.modeling import load_tokenizer, resolve_model
from tunegate.registry import Registry, VersionInfo
from tunegate.scoring import Answerer


@dataclass
class Predictor:
    """A registered version ready to answer: its answerer, its base model's tokenizer, what its run recorded, and
    (a prompt version) the demonstrations its prompt shows."""

    version: VersionInfo
    answerer: Answerer
    tokenizer: Any
    meta: dict[str, Any]
    demos: prompt_versions.Demonstrations | None = None

    @property
    def spec(self) -> AnswerSpec:
        return AnswerSpec.from_meta(self.meta)

    def shots(self, texts: list[str]) -> list[list[tuple[str, str]]] | None:
        return self.demos.shots(texts) if self.demos is not None else None


def load_version(info: VersionInfo, *, config_dir: str | Path | None = None) -> Predictor:
    """A registered version with its answerer: the base model from the recorded spec + the registry's adapter/head
    (a prompt version: the base model alone, and its demonstrations)."""
    artifact = info.path / "artifact"
    meta = TuningMethod.read_meta(artifact)
    base = resolve_model(meta["base_model"]["spec"], config_dir=config_dir)
    if prompt_versions.is_prompt(meta):
        from tunegate.modeling import load_model
        from tunegate.scoring import LMAnswerer

        answerer = LMAnswerer(load_model(base.path))
    else:
        answerer = get_method(meta["method"]).load_for_inference(base_path=base.path, artifact_dir=artifact)
    demos = prompt_versions.Demonstrations.load(artifact, meta)
    return Predictor(version=info, answerer=answerer, tokenizer=load_tokenizer(base.path), meta=meta, demos=demos)


def load_predictor(registry_root: str | Path, ref: str) -> Predictor:
    reg = Registry(registry_root)
    info = reg.resolve(ref)
    reg.require_intact(
        info.name, info.version, doing=f"loading (`tunegate registry rollback {info.name}` moves production back)"
    )
    return load_version(info)


def prompt_ids(p: Predictor, texts: list[str]) -> list[list[int]]:
    """Each input cut to the version's length budget and put in its prompt, exactly as its evaluation did."""
    return answering.prompt_ids(p.spec, p.tokenizer, texts, shots=p.shots(texts))


def conversation_input(p: Predictor, messages: list[dict[str, str]]) -> str:
    """What a chat request is to this version: the whole conversation for one trained on conversations, else the
    last user turn (a version trained on single inputs answers single inputs)."""
    from tunegate.conversations import Turn, to_json

    if p.spec.conversation:
        return to_json([Turn(m["role"], m["content"], 0) for m in messages])
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def complete(p: Predictor, prompt: str, *, max_tokens: int) -> dict[str, Any]:
    """Greedy generation from the model's prompt template around ``prompt`` (a conversation version: a JSON turn
    list, or plain text taken as one user turn)."""
    if p.spec.conversation and not prompt.lstrip().startswith("["):
        prompt = conversation_input(p, [{"role": "user", "content": prompt}])
    ids = prompt_ids(p, [prompt])
    stops = p.spec.builder(p.tokenizer).stop_ids()
    gens, stats = p.answerer.generate(p.tokenizer, ids, max_new_tokens=max_tokens, batch_size=1, stop_ids=stops)
    return {"text": gens[0], "prompt_tokens": len(ids[0]), "completion_tokens": int(stats.output_tokens)}


def as_conversation(p: Predictor, text: str) -> str:
    """A `predict` input for a conversation version: a JSON line in a training file's shape (``{"messages":
    [...]}``, ShareGPT, Alpaca; a trailing assistant turn is dropped: that turn is what gets answered), or plain
    text taken as one user turn."""
    import json

    from tunegate.conversations import detect_format, parse, to_json

    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        record = None
    fmt = detect_format(record) if isinstance(record, dict) else None
    if fmt is None:
        return conversation_input(p, [{"role": "user", "content": text}])
    placeholder = {"messages": {"role": "assistant", "content": "-"}, "sharegpt": {"from": "gpt", "value": "-"}}
    if fmt == "alpaca":
        record = {**record, "output": "-"}
    else:
        key = "messages" if fmt == "messages" else "conversations"
        turns = list(record.get(key) or [])
        last = turns[-1] if turns and isinstance(turns[-1], dict) else {}
        if str(last.get("role", last.get("from", ""))).lower() in ("assistant", "gpt"):
            turns = turns[:-1]
        record = {key: [*turns, placeholder[fmt]]}
    turns, problem = parse(record, fmt, 1)
    if problem is not None:
        raise TunegateError(f"predict: that conversation is not valid: {problem.message}")
    return to_json(turns[:-1])


def predict(p: Predictor, texts: list[str]) -> list[dict[str, Any]]:
    """The version's answers: a label with its probabilities, a number (None when none was written), or text."""
    if p.spec.conversation:
        texts = [as_conversation(p, t) for t in texts]
    out = answering.answer(p.answerer, p.tokenizer, p.spec, prompt_ids(p, texts), fallback=math.nan)
    if out.label_logprobs is not None:
        labels = list(p.spec.labels)
        return [
            {"input": t, "label": y, "probabilities": dict(zip(labels, row))}
            for t, y, row in zip(texts, out.predictions, out.label_logprobs.exp().tolist())
        ]
    if out.values is not None:
        return [{"input": t, "value": None if math.isnan(v) else v} for t, v in zip(texts, out.values)]
    return [{"input": t, "output": g} for t, g in zip(texts, out.predictions)]
