"""Settings of the `retrieved_few_shot` rung (``baselines.retrieved_few_shot``).

Imports nothing heavy: the config loads it."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from tunegate.ladder.base import Retriever, retrievers_shorthand
from tunegate.strict import Strict


class RetrievedFewShotConfig(Strict):
    """Few-shot with retrieved demonstrations: the k train rows most similar to each input go into its prompt."""

    enabled: bool = Field(default=True, description="Measure the retrieved few-shot rung(s).")
    k: int = Field(default=4, ge=1, le=64, description="Demonstrations per input.")
    retrievers: list[Retriever] = Field(
        default_factory=lambda: ["hybrid"],
        min_length=1,
        description=(
            "One rung per retriever: bm25 (lexical, bm25s), dense (sentence embeddings, retrieval.embedding_model), "
            "hybrid (both, fused by reciprocal rank). `retriever: bm25` is a shorthand for one."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return retrievers_shorthand(v)
