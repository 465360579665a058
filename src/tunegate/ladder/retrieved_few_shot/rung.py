"""Retrieved few-shot: per input, the k train rows most similar to it as demonstrations (one rung per retriever)."""

from __future__ import annotations

from typing import Any

from tunegate.ladder.base import Augment, LadderContext, Rung, RungKind
from tunegate.ladder.retrieved_few_shot.settings import RetrievedFewShotConfig
from tunegate.ladder.search import (
    index_and_search,
    retrieval_details,
    retriever_params,
    search_texts,
)


class RetrievedFewShot(RungKind):
    def expand(self, settings: RetrievedFewShotConfig, ctx: LadderContext) -> list[Rung]:
        return [
            Rung(f"retrieved_few_shot_{r}", kind=self.key, params={"k": settings.k, **retriever_params(r, ctx)})
            for r in settings.retrievers
        ]

    def augment(self, rung: Rung, ctx: LadderContext, train, texts: list[str]) -> Augment:
        """Per input, the k most similar train rows (most similar last, nearest the input).

        The corpus is train with repeated texts kept once; the index's leakage guard withholds any train row whose
        text equals the input's (the row itself, when the input is a train row)."""
        from tunegate.data import ROW, canonical_columns

        text_col, label_col = canonical_columns(ctx.task)
        k = rung.params["k"]
        corpus = train.unique(subset=[text_col], keep="first", maintain_order=True)
        labels = corpus.get_column(label_col).to_list()
        inputs = corpus.get_column(text_col).to_list()
        ids = [f"train:{r}" for r in corpus.get_column(ROW).to_list()]
        queries = search_texts(texts, ctx.conversational)
        index, hits, stats, setup = index_and_search(rung, ids, search_texts(inputs, ctx.conversational), queries, k)
        shots = [[(inputs[h.index], ctx.answer(labels[h.index])) for h in reversed(row)] for row in hits]
        return Augment(
            shots=shots,
            sources=[[h.id for h in row] for row in hits],
            retrieval_seconds=stats.seconds,
            setup_seconds=setup,
            index=index,
            details={**retrieval_details(index, stats, k), "corpus_size": len(index)},
        )

    def describe(self, details: dict[str, Any]) -> str:
        return f"{details['k']} most similar train rows of {details['corpus_size']} ({details['retriever']}) + input"
