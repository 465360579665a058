"""One evaluation path for every way of answering: baseline rungs and tuned models.

Same eval rows, same prompt builder, same scorer, same metrics; only the model and
the demonstrations in the prompt differ.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from tunegate import metrics
from tunegate.answering import AnswerSpec, answer, label_logprobs, prompt_ids
from tunegate.conversations import conversation_targets
from tunegate.data import ROW, canonical_columns
from tunegate.errors import TunegateError
from tunegate.ladder import Augment, LadderContext, Rung
from tunegate.ladder import core as ladder
from tunegate.ladder.base import Scored, SearchEnv
from tunegate.ladder.core import CALIBRATED
from tunegate.methods import TrainingSet, get_method
from tunegate.modeling import load_model, load_tokenizer
from tunegate.problems import task_type
from tunegate.provenance import sha256_json
from tunegate.records import DatasetRef, EvalResult, Prediction, Selection, TuneResult
from tunegate.retrieval import copy_index
from tunegate.scoring import Answerer, LMAnswerer


def evaluate(
    answerer: Answerer,
    tokenizer,
    *,
    spec: AnswerSpec,
    eval_df: pl.DataFrame,
    name: str,
    kind: str,
    augment: Augment | None = None,
    fallback: float | None = None,
) -> EvalResult:
    """Score ``answerer`` on ``eval_df``; for classification by answer log-likelihood (or a head's log-probs).

    ``augment`` is what a baseline rung adds to each prompt (demonstrations, retrieved
    context) and what that cost. Regression: the model's number
    (the first number it writes, or a head's output); an answer without a number
    counts as ``fallback`` (the train mean), and how many did is recorded in ``details``.
    """
    text_col, label_col = canonical_columns(spec.task)
    texts = eval_df.get_column(text_col).to_list()
    refs = (
        eval_df.get_column("references").to_list()
        if "references" in eval_df.columns
        else eval_df.get_column(label_col).to_list()
    )
    aug = augment or Augment()
    spec = spec.with_instruction(aug.instruction)
    ids = prompt_ids(spec, tokenizer, texts, shots=aug.shots, contexts=aug.contexts)
    rows = eval_df.get_column(ROW).to_list()
    details: dict[str, Any] = dict(aug.details)
    out = answer(answerer, tokenizer, spec, ids, fallback=0.0 if fallback is None else fallback, desc=name)
    preds, stats = out.predictions, out.stats
    predictions = _predictions(out, rows, refs, list(spec.labels), aug.sources)
    if task_type(spec.task).numeric:
        details["unparsed_answers"], details["fallback"] = out.unparsed, fallback
    values, _ = metrics.compute(spec.task, preds, refs)
    n = len(texts)
    seconds = stats.seconds + aug.retrieval_seconds
    index = aug.index
    batches = stats.batch_seconds or [(min(spec.batch_size, n), stats.seconds * min(spec.batch_size, n) / max(n, 1))]
    waits = np.repeat([s for _, s in batches], [b for b, _ in batches]) + aug.retrieval_seconds / max(n, 1)
    return EvalResult(
        name=name,
        kind=kind,
        metrics=values,
        predictions=predictions,
        n=n,
        prompt_tokens_per_request=stats.prompt_tokens / n,
        output_tokens_per_request=stats.output_tokens / n,
        latency_ms_per_request=1000 * seconds / n,
        retrieval_ms_per_request=1000 * aug.retrieval_seconds / n,
        setup_seconds=aug.setup_seconds,
        index_build_seconds=index.build_seconds if index is not None else None,
        index_mb=index.size_mb() if index is not None else None,
        examples_per_s=n / seconds if seconds else 0.0,
        seconds=seconds,
        batch_size=spec.batch_size,
        details=details,
        p95_latency_ms=float(1000 * np.quantile(waits, 0.95)) if n else None,
    )


def _predictions(out, rows: list, refs: list, labels: list[str], sources: list | None) -> list[Prediction]:
    """One :class:`Prediction` per row: the answer, the reference, each label's log-prob when scored, and what was
    retrieved for it when a rung retrieved."""
    if out.label_logprobs is not None:
        predictions = [
            Prediction(
                row=r, prediction=p, reference=y, scores={lab: round(float(s), 4) for lab, s in zip(labels, srow)}
            )
            for r, p, y, srow in zip(rows, out.predictions, refs, out.label_logprobs.tolist())
        ]
    else:
        predictions = [Prediction(row=r, prediction=p, reference=y) for r, p, y in zip(rows, out.predictions, refs)]
    if sources is not None:
        predictions = [p.model_copy(update={"retrieved": s}) for p, s in zip(predictions, sources)]
    return predictions


def calibrated(
    base: EvalResult,
    *,
    spec: AnswerSpec,
    name: str,
    offset: list[float],
    setup_seconds: float,
    details: dict[str, Any],
) -> EvalResult:
    """``base``'s label log-probs on the same rows plus a per-label ``offset``: the calibrated rung, with no re-scoring.

    Its per-request cost is the base's (adding the offset is free); the calibration
    scoring is one-off ``setup_seconds``.
    """
    labels = list(spec.labels)

    def shift(rows: list[Prediction]) -> tuple[dict[str, float], list[Prediction]]:
        logp = torch.tensor([[p.scores[lab] for lab in labels] for p in rows])
        logp = torch.log_softmax(logp + torch.tensor(offset, dtype=logp.dtype), dim=1)
        preds = [labels[b] for b in logp.argmax(dim=1).tolist()]
        shifted = [
            p.model_copy(update={"prediction": y, "scores": {lab: round(float(v), 4) for lab, v in zip(labels, row)}})
            for p, y, row in zip(rows, preds, logp.tolist())
        ]
        return metrics.compute(spec.task, preds, [p.reference for p in rows])[0], shifted

    values, predictions = shift(base.predictions)
    selection = None
    if base.selection is not None:
        sel_values, sel_predictions = shift(base.selection.predictions)
        selection = Selection(metrics=sel_values, predictions=sel_predictions, n=base.selection.n)
    return base.model_copy(
        update={
            "name": name,
            "metrics": values,
            "predictions": predictions,
            "selection": selection,
            "setup_seconds": base.setup_seconds + setup_seconds,
            "details": {
                **base.details,
                **details,
                "calibrated_from": base.name,
                "label_offset": {lab: round(o, 4) for lab, o in zip(labels, offset)},
            },
        }
    )


def training_set(
    spec: AnswerSpec, tokenizer, train: pl.DataFrame, *, model_sha: str, data_hash: str, train_on: str
) -> TrainingSet:
    """The train rows as token ids with the same prompts the evaluation uses (``train_on``: which assistant turns of
    a conversation are trained, ``data.train_on``)."""
    builder = spec.builder(tokenizer)
    kind = task_type(spec.task)
    text_col, label_col = kind.columns
    answers = spec.labels
    labels = list(answers)
    prompts, targets, index, numbers = [], [], [], []
    pairs = train.select(text_col, label_col).iter_rows()
    if builder.conversation:  # every trained assistant turn, with the turns before it as its prompt
        pairs = conversation_targets(train, train_on)
    for t, y in pairs:
        p, a = builder.training_example(t, kind.target_text(y, answers), spec.max_length)
        prompts.append(p)
        targets.append(a)
        if kind.has_labels:
            index.append(labels.index(y))
        elif kind.numeric:
            numbers.append(float(y))
    fingerprint = sha256_json(
        {
            "data": data_hash,
            "model": model_sha,
            "prompt": spec.prompt.model_dump(),
            "labels": answers,
            "max_length": spec.max_length,
            "train_on": train_on if builder.conversation else None,
        }
    )
    return TrainingSet(
        task=spec.task,
        prompt_ids=prompts,
        answer_ids=targets,
        pad_id=tokenizer.pad_token_id,
        fingerprint=fingerprint,
        labels=labels,
        label_index=index if kind.has_labels else None,
        targets=numbers if kind.numeric else None,
        instruction=builder.instruction(),
    )


def per_example_view(result: EvalResult, metric: str) -> dict[str, Any]:
    """What the bootstrap needs from one side: predictions, and the per-row scores when the metric is their mean."""
    preds = [p.prediction for p in result.predictions]
    return {
        "predictions": preds,
        "per_example": metrics.row_scores(metric, preds, [p.reference for p in result.predictions]),
    }


def prompt_fingerprint(spec: AnswerSpec, model_path: str, dataset: DatasetRef) -> str:
    """Hash of the exact token ids every rung starts from: each eval row's prompt (the input cut to the
    length budget, in the prompt template) and each label's scored answer tokens, plus the generation cap.

    Costs a tokenizer pass over the eval rows, no model: the ladder's cache key reads it.
    """
    tokenizer = load_tokenizer(model_path)
    kind = task_type(spec.task)
    texts = pl.read_parquet(dataset.eval_path).get_column(kind.columns[0]).to_list()
    return sha256_json(
        {
            "task": spec.task,
            "prompts": prompt_ids(spec, tokenizer, texts),
            "answers": spec.builder(tokenizer).label_answer_ids() if kind.scored else None,
            "labels": list(spec.labels),
            "max_new_tokens": spec.max_new_tokens if not kind.scored else None,
        }
    )


def evaluate_rung(
    spec: AnswerSpec,
    ctx: LadderContext,
    model_path: str,
    dataset: DatasetRef,
    rung: Rung,
    base: EvalResult | None,
    index_dir: Path,
) -> EvalResult:
    """One rung of the ladder on the eval rows; a retrieval index it used is saved under ``index_dir/<rung>/``.

    A calibrated rung takes its base rung's result (``base``) and re-uses its scores.
    """
    tokenizer = load_tokenizer(model_path)
    answerer = LMAnswerer(load_model(model_path))
    train = pl.read_parquet(dataset.train_path)
    if rung.kind == CALIBRATED:
        if base is None or base.name != rung.base.name:
            raise ValueError(f"rung {rung.name} needs the result of {rung.base.name}")
        t0 = time.perf_counter()
        texts, prior = ladder.calibration_inputs(ctx, train, rung)
        aug = ladder.augment_for(ctx, ladder.searched(rung.base, base.details), train, texts)
        ids = prompt_ids(
            spec.with_instruction(aug.instruction if aug else None),
            tokenizer,
            texts,
            shots=aug.shots if aug else None,
            contexts=aug.contexts if aug else None,
        )
        logp, _ = label_logprobs(answerer, tokenizer, spec, ids, desc=f"calibrate {rung.name}")
        offset = ladder.calibration_offset(logp, prior)
        details = {"calibration": rung.params["calibration"], "calibration_inputs": len(texts)}
        return calibrated(
            base, spec=spec, name=rung.name, offset=offset, setup_seconds=time.perf_counter() - t0, details=details
        )
    text_col = canonical_columns(spec.task)[0]
    search = None
    if ladder.searches(rung):  # its prompt is chosen on the selection split first
        env = search_env(spec, ctx, answerer, tokenizer, train, dataset)
        rung, search = ladder.search(ctx, rung, env)

    def score(frame: pl.DataFrame) -> tuple[EvalResult, Augment | None]:
        augment = ladder.augment_for(ctx, rung, train, frame.get_column(text_col).to_list())
        kw = dict(spec=spec, name=rung.name, kind="baseline", augment=augment, fallback=dataset.train_mean)
        result = evaluate(answerer, tokenizer, eval_df=frame, **kw)
        if search is not None:  # the search is the rung's one-off setup
            result.details["search"] = search
            result.setup_seconds += search["seconds"]
        return result.model_copy(update={"rung": rung.kind}), augment

    result, augment = score(pl.read_parquet(dataset.eval_path))
    if augment is not None and augment.index is not None:
        result.details["index"] = str(copy_index(augment.index, Path(index_dir) / rung.name))
    searched = set(search["searched_rows"]) if search is not None else set()
    return with_selection(result, dataset, lambda frame: score(frame)[0], exclude=searched)


def search_env(spec: AnswerSpec, ctx: LadderContext, answerer, tokenizer, train, dataset: DatasetRef) -> SearchEnv:
    """What a searching rung may use: the train and selection rows, the configured instruction, the base model
    scoring a candidate (the one answering path) and writing a reply to a request."""
    from tunegate.config import PromptConfig

    if not dataset.dev_path:
        raise TunegateError("a searching rung needs a selection split (data.dev or data.dev_fraction)")
    text_col, label_col = canonical_columns(spec.task)

    def score(instruction: str, shots, frame: pl.DataFrame) -> Scored:
        s = spec.with_instruction(instruction)
        ids = prompt_ids(s, tokenizer, frame.get_column(text_col).to_list(), shots=shots)
        out = answer(answerer, tokenizer, s, ids, fallback=0.0)
        refs = frame.get_column(label_col).to_list()
        values, _ = metrics.compute(spec.task, out.predictions, refs)
        return Scored(values[ctx.metric], out.predictions, refs, out.stats.prompt_tokens, out.stats.seconds)

    plain = PromptConfig(system=spec.prompt.system, instruction="", input_prefix="", format=spec.prompt.format)
    writer = AnswerSpec(task=spec.task, prompt=plain, labels={}, max_length=spec.max_length, max_new_tokens=64)

    def generate(request: str, max_new_tokens: int) -> str:
        builder = writer.builder(tokenizer)
        ids = builder.encode(builder.render(request))
        texts, _ = answerer.generate(tokenizer, [ids], max_new_tokens=max_new_tokens, stop_ids=builder.stop_ids())
        return texts[0]

    instruction = spec.prompt.instruction or task_type(spec.task).instruction(spec.prompt.list_labels)
    return SearchEnv(train, pl.read_parquet(dataset.dev_path), instruction, score, generate)


def with_selection(result: EvalResult, dataset: DatasetRef, score, exclude: set[int] = frozenset()) -> EvalResult:
    """``result`` plus the same model's scores on the selection split (``score(frame)`` -> EvalResult), when the data
    has one: what the choices (the best rung, a seed, a method) are made on, so that the eval rows judge
    untouched. ``exclude``: selection rows it must not be scored on (those a prompt search chose on)."""
    if not dataset.dev_path:
        return result
    frame = pl.read_parquet(dataset.dev_path)
    kept = frame.filter(~pl.col(ROW).is_in(sorted(exclude))) if exclude else frame
    dev = score(kept if kept.height else frame)  # a split of one row: nothing is left unseen
    return result.model_copy(update={"selection": Selection(metrics=dev.metrics, predictions=dev.predictions, n=dev.n)})


def evaluate_tuned(spec: AnswerSpec, model_path: str, dataset: DatasetRef, tuned: TuneResult) -> EvalResult:
    """The tuned artifact, loaded as it will be served, on the same eval rows as the ladder (and on the selection
    split, when there is one)."""
    answerer = get_method(tuned.method).load_for_inference(base_path=model_path, artifact_dir=Path(tuned.artifact_dir))
    tokenizer = load_tokenizer(model_path)

    def score(frame: pl.DataFrame) -> EvalResult:
        kw = dict(spec=spec, name=f"tuned:{tuned.method}", kind="tuned", fallback=dataset.train_mean)
        return evaluate(answerer, tokenizer, eval_df=frame, **kw)

    return with_selection(score(pl.read_parquet(dataset.eval_path)), dataset, score)
