"""Answering new inputs with a registered model (``tunegate predict`` and ``tunegate serve``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate.config import PromptConfig
from tunegate.methods import get_method
from tunegate.methods.base import TuningMethod
from tunegate.modeling import load_tokenizer, resolve_model
from tunegate.prompts import PromptBuilder
from tunegate.registry import Registry, VersionInfo
from tunegate.scoring import Answerer, answer_token_ids


@dataclass
class Predictor:
    version: VersionInfo
    answerer: Answerer
    tokenizer: Any
    meta: dict[str, Any]

    @property
    def builder(self) -> PromptBuilder:
        labels = self.meta.get("labels") or {}
        return PromptBuilder(self.tokenizer, PromptConfig(**self.meta["prompt"]), self.meta["task"], list(labels.values()))


def load_version(info: VersionInfo, *, config_dir: str | Path | None = None) -> tuple[dict[str, Any], Answerer, Any]:
    """A registered version's recorded meta, its answerer (base model from the recorded spec + the registry's
    adapter/head) and the base model's tokenizer."""
    artifact = info.path / "artifact"
    meta = TuningMethod.read_meta(artifact)
    base = resolve_model(meta["base_model"]["spec"], config_dir=config_dir)
    answerer = get_method(meta["method"]).load_for_inference(base_path=base.path, artifact_dir=artifact)
    return meta, answerer, load_tokenizer(base.path)


def load_predictor(registry_root: str | Path, ref: str) -> Predictor:
    reg = Registry(registry_root)
    info = reg.resolve(ref)
    reg.require_intact(info.name, info.version, doing=f"loading (`tunegate registry rollback {info.name}` moves production back)")
    meta, answerer, tokenizer = load_version(info)
    return Predictor(version=info, answerer=answerer, tokenizer=tokenizer, meta=meta)


def prompt_ids(p: Predictor, texts: list[str]) -> list[list[int]]:
    """Each input cut to the version's length budget (as in training and evaluation), in its prompt."""
    b = p.builder
    answers = (p.meta.get("labels") or {}).values()
    answer_len = max((len(b.answer_ids(a)) for a in answers), default=0)
    budget = max(8, p.meta.get("max_length", 512) - b.overhead_tokens() - answer_len)
    return [b.encode(b.render(b.fit_text(t, budget))) for t in texts]


def complete(p: Predictor, prompt: str, *, max_tokens: int) -> dict[str, Any]:
    """Greedy generation from the model's prompt template around ``prompt``."""
    ids = prompt_ids(p, [prompt])
    gens, stats = p.answerer.generate(p.tokenizer, ids, max_new_tokens=max_tokens, batch_size=1)
    return {"text": gens[0], "prompt_tokens": len(ids[0]), "completion_tokens": int(stats.output_tokens)}


def predict(p: Predictor, texts: list[str]) -> list[dict[str, Any]]:
    b = p.builder
    prompt_ids_ = prompt_ids(p, texts)
    if p.meta["task"] == "classification":
        labels = list(p.meta["labels"])
        ans = answer_token_ids(b, [p.meta["labels"][lab] for lab in labels])
        scores, _ = p.answerer.score(prompt_ids_, ans, pad_id=p.tokenizer.pad_token_id)
        out = []
        for t, row in zip(texts, scores.tolist()):
            m = max(row)
            z = sum(math.exp(s - m) for s in row)
            probs = {lab: math.exp(s - m) / z for lab, s in zip(labels, row)}
            out.append({"input": t, "label": max(probs, key=probs.get), "probabilities": probs})
        return out
    if p.meta["task"] == "regression":
        values, _, unparsed = p.answerer.regress(p.tokenizer, prompt_ids_, fallback=float("nan"))
        return [{"input": t, "value": None if math.isnan(v) else v} for t, v in zip(texts, values)]
    gens, _ = p.answerer.generate(p.tokenizer, prompt_ids_, max_new_tokens=p.meta.get("max_new_tokens", 64))
    return [{"input": t, "output": g} for t, g in zip(texts, gens)]
