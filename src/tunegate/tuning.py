"""Training the configured method on the validated train rows, into a self-describing artifact folder."""

from __future__ import annotations

import functools
from pathlib import Path

import polars as pl

from tunegate import distributed
from tunegate.answering import AnswerSpec
from tunegate.evaluation import training_set
from tunegate.methods import MethodSettings, get_method
from tunegate.methods.base import SelectionLabels
from tunegate.modeling import load_tokenizer
from tunegate.problems import task_type
from tunegate.records import DatasetRef, RunContext, TuneResult
from tunegate.report import save_loss_plot
from tunegate.training import release_memory


def tune(
    settings: MethodSettings,
    spec: AnswerSpec,
    run: RunContext,
    dataset: DatasetRef,
    where: Path,
    *,
    train_on: str,
    progress: bool = True,
) -> TuneResult:
    """Train the method ``settings`` describe into ``where/artifact/`` (adapter or head, tokenizer, tunegate.json
    with everything serving needs to answer exactly as the evaluation did: ``spec``) and plot its loss curve to
    ``where/loss.png``."""
    release_memory()  # what an earlier stage freed goes back to the OS, so peak RSS is this method's
    method = get_method(settings.name)
    if not method.applies_to(spec.task):
        raise ValueError(f"method '{method.name}' does not apply to {spec.task} tasks")
    tokenizer = load_tokenizer(run.model_path)
    hashes = dict(model_sha=run.model_sha, data_hash=dataset.data_hash, train_on=train_on)
    data = training_set(spec, tokenizer, pl.read_parquet(dataset.train_path), **hashes)
    if dataset.dev_path:  # early stopping evaluates on it; otherwise it is watched (the overfitting guard's curve)
        dev = training_set(spec, tokenizer, pl.read_parquet(dataset.dev_path), **hashes)
        data.selection = dev.examples
        if dev.label_index is not None and task_type(spec.task).scored:  # and scored by its labels: the accuracy
            answers = spec.builder(tokenizer).label_answer_ids()
            data.selection_labels = SelectionLabels(dev.prompt_ids, answers, dev.label_index, tokenizer.pad_token_id)
    out_dir = where / "artifact"
    out_dir.mkdir(parents=True, exist_ok=True)
    train = method.train
    if run.placement.processes > 1 and method.data_parallel:  # one process per device, gradients all-reduced
        train = functools.partial(distributed.train, method, placement=run.placement)
    art = train(base_path=run.model_path, data=data, cfg=settings, out_dir=out_dir, progress=progress)
    st = art.train_stats
    adapter_dir = out_dir / "adapter"
    if adapter_dir.is_dir():
        tokenizer.save_pretrained(adapter_dir)  # the adapter folder is self-describing: weights + tokenizer
    method.write_meta(
        out_dir,
        {
            "method": method.name,
            "method_config": settings.model_dump(mode="json"),
            "base_model": {"spec": run.model_spec, "id": run.model_id, "sha": run.model_sha},
            **spec.meta(),  # how serving answers it: as its evaluation did
        },
    )
    selection = st.extra.get("early_stopping") or st.extra.get("selection_watch")
    save_loss_plot(st.losses, where / "loss.png", xlabel=method.loss_axis, selection=selection)
    return TuneResult(
        method=method.name,
        artifact_dir=str(out_dir),
        train_seconds=st.seconds,
        peak_rss_mb=st.peak_rss_mb,
        base_footprint_mb=art.base_footprint_mb,
        trainable_params=art.trainable_params,
        total_params=art.total_params,
        n_steps=st.steps,
        n_train_tokens=st.tokens,
        tokens_per_s=st.tokens_per_s,
        loss_curve=st.losses,
        epoch_losses=st.epoch_losses,
        checkpoints=st.checkpoints,
        details=st.extra,
    )
