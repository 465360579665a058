"""Answering new inputs with a registered model (``tunegate predict`` and ``tunegate serve``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunegate import answering, prompt_versions
from tunegate.answering import AnswerSpec
from tunegate.errors import TunegateError
from tunegate.methods import TuningMethod, get_method
from tunegate.modeling import load_tokenizer, resolve_model
from tunegate.problems import task_type
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


def load_version(
    info: VersionInfo, *, config_dir: str | Path | None = None, bases=None, adapter_name: str | None = None
) -> Predictor:
    """A registered version with its answerer: the base model from the recorded spec + the registry's adapter/head
    (a prompt version: the base model alone, and its demonstrations). With ``bases`` (``adapters.SharedBases``,
    a server's) the version goes on the base model held there when its method can share it, its adapter named
    ``adapter_name`` (default ``NAME-vN``)."""
    artifact = info.path / "artifact"
    meta = TuningMethod.read_meta(artifact)
    base = resolve_model(meta["base_model"]["spec"], config_dir=config_dir)
    answerer = None
    if prompt_versions.is_prompt(meta):
        if bases is not None:
            answerer = bases.lm(base.path)
        else:
            from tunegate.modeling import load_model
            from tunegate.scoring import LMAnswerer

            answerer = LMAnswerer(load_model(base.path))
    elif bases is not None:
        answerer = get_method(meta["method"]).load_shared(
            bases=bases,
            base_path=base.path,
            artifact_dir=artifact,
            name=adapter_name or f"{info.name}-v{info.version}".replace(".", "_"),
        )
    if answerer is None:
        answerer = get_method(meta["method"]).load_for_inference(base_path=base.path, artifact_dir=artifact)
    demos = prompt_versions.Demonstrations.load(artifact, meta)
    return Predictor(version=info, answerer=answerer, tokenizer=load_tokenizer(base.path), meta=meta, demos=demos)


def load_predictor(registry_root: str | Path, ref: str, *, bases=None) -> Predictor:
    reg = Registry(registry_root)
    info = reg.resolve(ref)
    reg.require_intact(
        info.name, info.version, doing=f"loading (`tunegate registry rollback {info.name}` moves production back)"
    )
    return load_version(info, bases=bases)


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


class TextStream:
    """One generation's text as it is decoded: what is safe to show so far (``on_text`` gets each new piece),
    cut at the first of the ``stop`` strings, which also stops the generation (it is a stopping criterion).

    Leading whitespace is not shown (as generation's answers are stripped); a piece that could be the start of a
    stop string, or ends inside a multi-byte character, waits for the next token.
    """

    def __init__(self, tokenizer, *, stop_ids, stop=(), on_text=None, cancelled=None):
        self.tokenizer, self.stop_ids, self.stop = tokenizer, set(stop_ids), [s for s in stop or () if s]
        self.on_text, self.cancelled = on_text, cancelled or (lambda: False)
        self.ids: list[int] = []
        self.shown = ""
        self.finish_reason: str | None = None  # "stop" once a stop token or string ended it
        self._prompt_seen = False

    def put(self, value) -> None:  # transformers' streamer: first the prompt, then each new token
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        if self.finish_reason:
            return
        for t in value.reshape(-1).tolist():
            if t in self.stop_ids:
                self.finish_reason = "stop"
                break
            self.ids.append(t)
        self._show(final=self.finish_reason is not None)

    def end(self) -> None:
        self._show(final=True)

    def _show(self, *, final: bool) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()
        cut = min((i for i in (text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, final, self.finish_reason = text[:cut], True, "stop"
        elif not final:
            hold = max((len(s) - 1 for s in self.stop), default=0)
            text = text[: len(text) - hold] if hold else text
            if text.endswith("\ufffd"):
                text = text.rstrip("\ufffd")
        if len(text) > len(self.shown) and text.startswith(self.shown):
            piece, self.shown = text[len(self.shown) :], text
            if self.on_text is not None:
                self.on_text(piece)

    def __call__(self, input_ids, scores, **kwargs):  # transformers' stopping criterion
        import torch

        return torch.full((input_ids.shape[0],), bool(self.finish_reason) or self.cancelled(), dtype=torch.bool)


def complete(
    p: Predictor,
    prompt: str,
    *,
    max_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: list[str] | tuple[str, ...] = (),
    on_text=None,
    cancelled=None,
) -> dict[str, Any]:
    """Generation from the model's prompt template around ``prompt`` (a conversation version: a JSON turn list, or
    plain text taken as one user turn): greedy at temperature 0 (as the version was judged), else sampled
    (``seed`` makes it repeatable). ``on_text`` gets the text piece by piece as it is decoded (streaming);
    ``cancelled()`` true stops it (a client that went away)."""
    from transformers import StoppingCriteriaList

    if p.spec.conversation and not prompt.lstrip().startswith("["):
        prompt = conversation_input(p, [{"role": "user", "content": prompt}])
    ids = prompt_ids(p, [prompt])
    stops = p.spec.builder(p.tokenizer).stop_ids()
    stream = TextStream(p.tokenizer, stop_ids=stops, stop=stop, on_text=on_text, cancelled=cancelled)
    options: dict[str, Any] = {"streamer": stream, "stopping_criteria": StoppingCriteriaList([stream])}
    if temperature > 0:
        import torch

        options.update(do_sample=True, temperature=temperature, top_p=top_p)
        if seed is not None:
            torch.manual_seed(seed)
    _, stats = p.answerer.generate(
        p.tokenizer, ids, max_new_tokens=max_tokens, batch_size=1, stop_ids=stops, options=options
    )
    n_out = int(stats.output_tokens)
    return {
        "text": stream.shown,
        "prompt_tokens": len(ids[0]),
        "completion_tokens": n_out,
        "finish_reason": stream.finish_reason or ("length" if n_out >= max_tokens else "stop"),
    }


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


def _inputs(p: Predictor, texts: list[str]) -> list[str]:
    return [as_conversation(p, t) for t in texts] if p.spec.conversation else list(texts)


def predict(p: Predictor, texts: list[str]) -> list[dict[str, Any]]:
    """The version's answers: a label with its probabilities, a number (None when none was written), or text."""
    texts = _inputs(p, texts)
    return _results(
        p, texts, answering.answer(p.answerer, p.tokenizer, p.spec, prompt_ids(p, texts), fallback=math.nan)
    )


def mix_key(p: Predictor) -> tuple | None:
    """Versions with the same key can be scored in one forward (classification on one shared base, same answer
    tokens: ``adapters.score_mixed``); None: on its own."""
    a = p.answerer
    if not getattr(a, "mixable", False) or not task_type(p.spec.task).scored:
        return None
    answers = p.spec.builder(p.tokenizer).label_answer_ids()
    return (id(a.shared), p.spec.batch_size, tuple(tuple(x) for x in answers))


def predict_together(jobs: list[tuple[Predictor, list[str]]]) -> list[list[dict[str, Any]]]:
    """Several versions' inputs, answered in shared forwards where :func:`mix_key` allows (each row with its own
    adapter), else one version after another; each job's answers as :func:`predict` gives them."""
    keys = [mix_key(p) for p, _ in jobs]
    if len({id(p) for p, _ in jobs}) == 1 or None in keys or len(set(keys)) > 1:
        return [predict(p, texts) for p, texts in jobs]
    from tunegate.adapters import score_mixed

    inputs = [_inputs(p, texts) for p, texts in jobs]
    ids = [row for (p, _), t in zip(jobs, inputs) for row in prompt_ids(p, t)]
    owner = [k for k, t in enumerate(inputs) for _ in t]
    first = jobs[0][0]
    scores, stats = score_mixed(
        [p.answerer for p, _ in jobs],
        ids,
        owner,
        first.spec.builder(first.tokenizer).label_answer_ids(),
        pad_id=first.tokenizer.pad_token_id,
        batch_size=first.spec.batch_size,
    )
    logp = torch.log_softmax(scores.float(), dim=1)
    out, i = [], 0
    for (p, _), t in zip(jobs, inputs):
        out.append(_results(p, t, answering.labelled(logp[i : i + len(t)], stats, p.spec, p.tokenizer)))
        i += len(t)
    return out


def _results(p: Predictor, texts: list[str], out: answering.Answers) -> list[dict[str, Any]]:
    if out.label_logprobs is not None:
        labels = list(p.spec.labels)
        return [
            {"input": t, "label": y, "probabilities": dict(zip(labels, row))}
            for t, y, row in zip(texts, out.predictions, out.label_logprobs.exp().tolist())
        ]
    if out.values is not None:
        return [{"input": t, "value": None if math.isnan(v) else v} for t, v in zip(texts, out.values)]
    return [{"input": t, "output": g} for t, g in zip(texts, out.predictions)]
