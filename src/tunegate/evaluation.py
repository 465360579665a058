"""One evaluation path for every way of answering: baseline rungs and tuned models.

Same eval rows, same prompt builder, same scorer, same metrics; only the model and
the demonstrations in the prompt differ.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from tunegate import metrics
from tunegate.config import TunegateConfig
from tunegate.data import ROW, canonical_columns
from tunegate.methods.base import TrainingSet
from tunegate.prompts import PromptBuilder
from tunegate.provenance import sha256_json
from tunegate.records import EvalResult, Prediction
from tunegate.scoring import Answerer, answer_token_ids


@dataclass(frozen=True)
class Rung:
    """A baseline rung: how the prompt is built (no weights change)."""

    name: str
    shots: int = 0
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


def baseline_rungs(cfg: TunegateConfig) -> list[Rung]:
    rungs = []
    if cfg.baselines.zero_shot:
        rungs.append(Rung("zero_shot"))
    fs = cfg.baselines.few_shot
    if fs.enabled:
        rungs.append(Rung("few_shot", shots=fs.k, seed=fs.seed))
    return rungs


def select_shots(train: pl.DataFrame, *, k: int, seed: int, task: str) -> pl.DataFrame:
    """k demonstrations from train; for classification, labels take turns so each is shown."""
    text_col, label_col = canonical_columns(task)
    rng = random.Random(seed)
    rows = list(range(train.height))
    rng.shuffle(rows)
    if task == "classification":
        by_label: dict[str, list[int]] = {}
        for i in rows:
            by_label.setdefault(train[i, label_col], []).append(i)
        order = sorted(by_label)
        rng.shuffle(order)
        picked: list[int] = []
        while len(picked) < k and any(by_label.values()):
            for lab in order:
                if by_label[lab] and len(picked) < k:
                    picked.append(by_label[lab].pop())
        rows = picked
    return train[rows[:k]]


def make_builder(cfg: TunegateConfig, tokenizer) -> PromptBuilder:
    return PromptBuilder(tokenizer, cfg.prompt, cfg.task, list(cfg.data.label_answers().values()))


def evaluate(
    answerer: Answerer,
    tokenizer,
    *,
    cfg: TunegateConfig,
    eval_df: pl.DataFrame,
    name: str,
    kind: str,
    shots_df: pl.DataFrame | None = None,
    fallback: float | None = None,
) -> EvalResult:
    """Score ``answerer`` on ``eval_df``; for classification by answer log-likelihood (or a head's log-probs).

    Regression: the model's number (the first number it writes, or a head's output);
    an answer without a number counts as ``fallback`` (the train mean), and how many
    did is recorded in ``details``.
    """
    builder = make_builder(cfg, tokenizer)
    text_col, label_col = canonical_columns(cfg.task)
    answers = cfg.data.label_answers()
    shots: list[tuple[str, str]] = []
    if shots_df is not None:
        for t, y in shots_df.select(text_col, label_col).iter_rows():
            shots.append((t, answers[y] if cfg.task == "classification" else y))
    texts = eval_df.get_column(text_col).to_list()
    refs = eval_df.get_column(label_col).to_list()
    answer_len = max((len(builder.answer_ids(a)) for a in answers.values()), default=0)
    budget = cfg.method.max_length - builder.overhead_tokens() - answer_len
    prompt_ids = [builder.encode(builder.render(builder.fit_text(t, budget), shots)) for t in texts]
    bs = cfg.baselines.batch_size
    rows = eval_df.get_column(ROW).to_list()
    details: dict[str, Any] = {"shots": [list(x) for x in shots]} if shots else {}

    if cfg.task == "classification":
        labels = list(answers)
        ans_ids = answer_token_ids(builder, [answers[lab] for lab in labels])
        scores, stats = answerer.score(prompt_ids, ans_ids, pad_id=tokenizer.pad_token_id, batch_size=bs, desc=f"score {name}")
        best = scores.argmax(dim=1).tolist()
        preds = [labels[b] for b in best]
        predictions = [
            Prediction(row=r, prediction=p, reference=y, scores={lab: round(float(s), 4) for lab, s in zip(labels, srow)})
            for r, p, y, srow in zip(rows, preds, refs, scores.tolist())
        ]
    elif cfg.task == "regression":
        values, stats, unparsed = answerer.regress(
            tokenizer, prompt_ids, fallback=0.0 if fallback is None else fallback, max_new_tokens=min(cfg.baselines.max_new_tokens, 12),
            batch_size=bs, desc=f"predict {name}",
        )
        preds = [f"{v:.6g}" for v in values]
        predictions = [Prediction(row=r, prediction=p, reference=y) for r, p, y in zip(rows, preds, refs)]
        details["unparsed_answers"], details["fallback"] = unparsed, fallback
    else:
        preds, stats = answerer.generate(
            tokenizer, prompt_ids, max_new_tokens=cfg.baselines.max_new_tokens, batch_size=bs, desc=f"generate {name}"
        )
        predictions = [Prediction(row=r, prediction=p, reference=y) for r, p, y in zip(rows, preds, refs)]

    values, _ = metrics.compute(cfg.task, preds, refs)
    n = len(texts)
    return EvalResult(
        name=name,
        kind=kind,
        metrics=values,
        predictions=predictions,
        n=n,
        prompt_tokens_per_request=stats.prompt_tokens / n,
        latency_ms_per_request=1000 * stats.seconds / n,
        examples_per_s=n / stats.seconds if stats.seconds else 0.0,
        seconds=stats.seconds,
        batch_size=bs,
        details=details,
    )


def training_set(cfg: TunegateConfig, tokenizer, train: pl.DataFrame, *, model_sha: str, data_hash: str) -> TrainingSet:
    """The train rows as token ids with the same prompts the evaluation uses."""
    builder = make_builder(cfg, tokenizer)
    text_col, label_col = canonical_columns(cfg.task)
    answers = cfg.data.label_answers()
    labels = list(answers)
    prompts, targets, index, numbers = [], [], [], []
    for t, y in train.select(text_col, label_col).iter_rows():
        answer = answers[y] if cfg.task == "classification" else y.strip()  # regression: the number as written
        p, a = builder.training_example(t, answer, cfg.method.max_length)
        prompts.append(p)
        targets.append(a)
        if cfg.task == "classification":
            index.append(labels.index(y))
        elif cfg.task == "regression":
            numbers.append(float(y))
    fingerprint = sha256_json(
        {"data": data_hash, "model": model_sha, "prompt": cfg.prompt.model_dump(), "labels": answers, "max_length": cfg.method.max_length}
    )
    return TrainingSet(
        task=cfg.task,
        prompt_ids=prompts,
        answer_ids=targets,
        pad_id=tokenizer.pad_token_id,
        fingerprint=fingerprint,
        labels=labels,
        label_index=index if cfg.task == "classification" else None,
        targets=numbers if cfg.task == "regression" else None,
        instruction=builder.instruction(),
    )


def per_example_view(result: EvalResult, task: str, metric: str) -> dict[str, Any]:
    """What the paired bootstrap needs from one side: predictions and per-row scores."""
    preds = [p.prediction for p in result.predictions]
    refs = [p.reference for p in result.predictions]
    if metric in ("accuracy", "macro_f1"):
        return {"predictions": preds, "per_example": [float(p == r) for p, r in zip(preds, refs)]}
    if metric == "r2":  # not a per-row mean: resampled from predictions and references
        return {"predictions": [float(p) for p in preds]}
    _, per = metrics.compute(task, preds, refs)
    return {"predictions": preds, "per_example": per[metric]}
