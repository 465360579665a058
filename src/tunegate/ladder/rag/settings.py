"""Settings of the `rag` rung (``baselines.rag``). Imports nothing heavy: the config loads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from tunegate.ladder.base import Retriever, retrievers_shorthand
from tunegate.strict import Strict

DEFAULT_RAG_INSTRUCTION = (
    "Answer using only the context below. If the context does not contain the answer, say that you do not know."
)


def folder_shorthand(value: Any) -> Any:
    """`rag: docs/` names the folder with every other setting at its default."""
    return {"documents": value} if isinstance(value, (str, Path)) else value


class RagConfig(Strict):
    """RAG: the top-k chunks of a document collection go into the prompt with the input."""

    documents: Path = Field(
        description='Folder of .txt / .md / .jsonl documents (jsonl: one {"text": ...} per line), relative to the '
        "config file."
    )
    k: int = Field(default=3, ge=1, le=32, description="Chunks per input.")
    retrievers: list[Retriever] = Field(
        default_factory=lambda: ["hybrid"],
        min_length=1,
        description="One rung per retriever (as for retrieved_few_shot).",
    )
    chunk_words: int = Field(
        default=120, ge=10, le=2000, description="Chunks follow paragraphs and hold at most this many words."
    )
    overlap_words: int = Field(default=20, ge=0, description="Words shared by consecutive windows of a long paragraph.")
    instruction: str = Field(
        default=DEFAULT_RAG_INSTRUCTION, description="Put before the context: tells the model to answer from it."
    )

    @model_validator(mode="before")
    @classmethod
    def _one(cls, v: Any) -> Any:
        return retrievers_shorthand(v)

    @model_validator(mode="after")
    def _overlap(self):
        if self.overlap_words >= self.chunk_words:
            raise ValueError(f"overlap_words {self.overlap_words} must be smaller than chunk_words {self.chunk_words}")
        return self
