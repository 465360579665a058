"""Calibration wraps any classification rung: its calibrated twin re-uses the rung's scores on the eval rows and
corrects the label prior (no eval labels used, no re-scoring)."""

from __future__ import annotations

from typing import Any

from tunegate.ladder.base import LadderContext, Rung

CALIBRATED = "calibrated"  # the kind of a calibrated twin
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")  # Zhao et al. 2021, "Calibrate before use"


def with_calibrated_twins(rungs: list[Rung], baselines: Any) -> list[Rung]:
    """Each rung followed by its calibrated twin ``<rung>_calibrated``."""
    params = {"calibration": baselines.calibration, "rows": baselines.calibration_rows}
    out = []
    for r in rungs:
        out += [r, Rung(f"{r.name}_calibrated", kind=CALIBRATED, base=r, params=dict(params))]
    return out


def calibration_offset(label_logprobs, target_prior: list[float] | None = None) -> list[float]:
    """Per-label offset that removes the model's label bias measured on ``label_logprobs`` [n, labels]
    (normalized over labels): minus the log of the mean probability, plus the log of ``target_prior``
    (uniform when None). Adding it to a row's label log-probs and taking the argmax is the calibrated prediction."""
    import torch

    mean_p = torch.softmax(label_logprobs, dim=1).mean(dim=0).clamp_min(1e-12)
    offset = -mean_p.log()
    if target_prior is not None:
        offset = offset + torch.tensor(target_prior, dtype=offset.dtype).clamp_min(1e-12).log()
    return offset.tolist()


def calibration_inputs(ctx: LadderContext, train, rung: Rung) -> tuple[list[str], list[float] | None]:
    """The inputs whose mean label probabilities measure the bias, and the label shares to aim for (None: uniform).

    content_free: 'N/A', '' and '[MASK]' (with the base rung's demonstrations or retrieval);
    train: a sample of train inputs (a retrieved rung never retrieves the input itself) and the train label shares.
    No eval row and no eval label is used either way.
    """
    from tunegate.data import canonical_columns

    if rung.params["calibration"] == "content_free":
        return list(CONTENT_FREE_INPUTS), None
    text_col, label_col = canonical_columns(ctx.task)
    sample = train.sample(n=min(rung.params["rows"], train.height), seed=ctx.split_seed)
    counts = dict(train.get_column(label_col).value_counts().iter_rows())
    return sample.get_column(text_col).to_list(), [counts.get(lab, 0) / train.height for lab in ctx.label_answers]


def describe_calibration(details: dict[str, Any]) -> str:
    how = (
        "content-free inputs"
        if details["calibration"] == "content_free"
        else f"{details['calibration_inputs']} train inputs"
    )
    return f"label prior corrected ({how})"
