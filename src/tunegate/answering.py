"""One answering path: how an input becomes prompt ids, and how a model's answer becomes a prediction.

Evaluation (baselines and tuned models), ``tunegate predict`` and ``tunegate serve`` all
go through :func:`prompt_ids` and :func:`answer`, with an :class:`AnswerSpec` built from
the run's config or from what a registered version recorded. So what is served is cut
and answered exactly as what was judged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from tunegate.config import PromptConfig, TunegateConfig
from tunegate.errors import TunegateError
from tunegate.formats import is_conversation
from tunegate.problems import task_type
from tunegate.prompts import Context, PromptBuilder
from tunegate.scoring import Answerer, ScoreStats

REGRESSION_MAX_NEW_TOKENS = 12  # a number needs few tokens; the first number written is taken


@dataclass(frozen=True)
class AnswerSpec:
    """Everything besides the model that decides a prompt and an answer."""

    task: str
    prompt: PromptConfig
    labels: dict[str, str]  # classification: label -> answer word, in label order
    max_length: int  # prompt + answer tokens; the input is cut to fit
    max_new_tokens: int  # generation: cap on decoded tokens
    batch_size: int = 16
    conversation: bool = False  # inputs are conversations (JSON turn lists)
    label_offset: tuple[float, ...] = ()  # classification: added to the label log-probs (a calibrated prompt version)

    @classmethod
    def from_config(cls, cfg: TunegateConfig) -> "AnswerSpec":
        """The spec of a run's config, after validation resolved it (``TunegateConfig.with_resolved``)."""
        if cfg.method.max_length == "auto":
            raise TunegateError(
                "method.max_length 'auto' is chosen from the rows by validation: apply its resolved settings "
                "(cfg.with_resolved(validation.resolved)) before answering"
            )
        return cls(
            task=cfg.task,
            prompt=cfg.prompt,
            labels=cfg.data.label_answers(),
            max_length=cfg.method.max_length,
            max_new_tokens=cfg.baselines.max_new_tokens,
            batch_size=cfg.baselines.batch_size,
            conversation=is_conversation(cfg.data.format),
        )

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "AnswerSpec":
        """From a registered artifact's tunegate.json (what its run recorded)."""
        return cls(
            task=meta["task"],
            prompt=PromptConfig(**meta["prompt"]),
            labels=dict(meta.get("labels") or {}),
            max_length=meta["max_length"],
            max_new_tokens=meta.get("max_new_tokens", 64),
            conversation=bool(meta.get("conversation", False)),
            label_offset=tuple(meta.get("label_offset") or ()),
        )

    def meta(self) -> dict[str, Any]:
        """What a registered version records to be answered the same way later."""
        return {
            "task": self.task,
            "prompt": self.prompt.model_dump(mode="json"),
            "labels": self.labels,
            "max_length": self.max_length,
            "max_new_tokens": self.max_new_tokens,
            "conversation": self.conversation,
            "label_offset": list(self.label_offset),
        }

    def with_instruction(self, instruction: str | None) -> "AnswerSpec":
        """This spec with another instruction (a searched prompt); unchanged for None."""
        if instruction is None:
            return self
        return replace(self, prompt=self.prompt.model_copy(update={"instruction": instruction}))

    def builder(self, tokenizer) -> PromptBuilder:
        return PromptBuilder(tokenizer, self.prompt, self.task, list(self.labels.values()), self.conversation)

    def input_budget(self, builder: PromptBuilder) -> int:
        """Tokens left for the input text: max_length minus the prompt's own tokens and the longest answer."""
        answer_len = max((len(builder.answer_ids(a)) for a in self.labels.values()), default=0)
        return self.max_length - builder.overhead_tokens() - answer_len


def prompt_ids(
    spec: AnswerSpec,
    tokenizer,
    texts: list[str],
    shots: list[list[tuple[str, str]]] | None = None,
    contexts: list[Context | None] | None = None,
) -> list[list[int]]:
    """Token ids of each input's prompt: the input cut to the length budget, plus a rung's demonstrations/context."""
    builder = spec.builder(tokenizer)
    budget = spec.input_budget(builder)
    return [
        builder.encode(
            builder.render(
                builder.fit_text(t, budget),
                shots[i] if shots is not None else (),
                contexts[i] if contexts is not None else None,
            )
        )
        for i, t in enumerate(texts)
    ]


@dataclass
class Answers:
    """A model's answers to prompts: what is predicted, with the label log-probs or numbers behind it."""

    predictions: list[str]  # the label, the text, or the number as text
    stats: ScoreStats
    label_logprobs: torch.Tensor | None = None  # classification: [n, labels], normalized among the labels
    values: list[float] | None = None  # regression
    unparsed: int = 0  # regression: answers with no number (they got the fallback)


def label_logprobs(answerer: Answerer, tokenizer, spec: AnswerSpec, ids: list[list[int]], desc: str | None = None):
    """Classification: log-probs over the labels (normalized among them) for each prompt, and the scoring stats."""
    ans_ids = spec.builder(tokenizer).label_answer_ids()
    scores, stats = answerer.score(ids, ans_ids, pad_id=tokenizer.pad_token_id, batch_size=spec.batch_size, desc=desc)
    return torch.log_softmax(scores.float(), dim=1), stats


def labelled(logp: torch.Tensor, stats: ScoreStats, spec: AnswerSpec, tokenizer) -> Answers:
    """Classification answers from the label log-probs (normalized among the labels), after the spec's offset."""
    labels = list(spec.labels)
    if spec.label_offset:  # calibrated: as the calibrated rung shifted its base's log-probs
        logp = torch.log_softmax(logp + torch.tensor(spec.label_offset, dtype=logp.dtype), dim=1)
    preds = [labels[b] for b in logp.argmax(dim=1).tolist()]
    builder = spec.builder(tokenizer)  # a served model answers with the label's scored tokens
    answer_len = {lab: len(builder.answer_ids(a)) for lab, a in spec.labels.items()}
    stats.output_tokens = sum(answer_len[p] for p in preds)
    return Answers(predictions=preds, stats=stats, label_logprobs=logp)


def answer(
    answerer: Answerer, tokenizer, spec: AnswerSpec, ids: list[list[int]], *, fallback: float, desc: str | None = None
) -> Answers:
    """The task's way of answering (its answer kind): score the labels, predict a number, or generate text."""
    kind = task_type(spec.task)
    if kind.scored:
        logp, stats = label_logprobs(answerer, tokenizer, spec, ids, desc=f"score {desc}" if desc else None)
        return labelled(logp, stats, spec, tokenizer)
    if kind.numeric:
        values, stats, unparsed = answerer.regress(
            tokenizer,
            ids,
            fallback=fallback,
            max_new_tokens=min(spec.max_new_tokens, REGRESSION_MAX_NEW_TOKENS),
            batch_size=spec.batch_size,
            desc=f"predict {desc}" if desc else None,
            stop_ids=spec.builder(tokenizer).stop_ids(),
        )
        return Answers(predictions=[f"{v:.6g}" for v in values], stats=stats, values=values, unparsed=unparsed)
    texts, stats = answerer.generate(
        tokenizer,
        ids,
        max_new_tokens=spec.max_new_tokens,
        batch_size=spec.batch_size,
        desc=f"generate {desc}" if desc else None,
        stop_ids=spec.builder(tokenizer).stop_ids(),
    )
    return Answers(predictions=texts, stats=stats)
