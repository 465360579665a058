"""RAG: per input, the top-k chunks of a document collection as context (one rung per retriever)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunegate.ladder.base import Augment, LadderContext, Rung, RungKind
from tunegate.ladder.rag.settings import RagConfig
from tunegate.ladder.search import (
    index_and_search,
    retrieval_details,
    retriever_params,
    search_texts,
)


class Rag(RungKind):
    def expand(self, settings: RagConfig, ctx: LadderContext) -> list[Rung]:
        shared = {
            "documents": str(ctx.resolve(settings.documents)),
            "k": settings.k,
            "chunk_words": settings.chunk_words,
            "overlap_words": settings.overlap_words,
            "instruction": settings.instruction,
        }
        return [
            Rung(f"rag_{r}", kind=self.key, params={**shared, **retriever_params(r, ctx)}) for r in settings.retrievers
        ]

    def augment(self, rung: Rung, ctx: LadderContext, train, texts: list[str]) -> Augment:
        from tunegate.documents import load_chunks
        from tunegate.prompts import Context

        texts = search_texts(texts, ctx.conversational)
        p = rung.params
        t0 = time.perf_counter()
        chunks = load_chunks(Path(p["documents"]), chunk_words=p["chunk_words"], overlap_words=p["overlap_words"])
        read = time.perf_counter() - t0
        index, hits, stats, setup = index_and_search(
            rung, [c.id for c in chunks], [c.text for c in chunks], texts, p["k"]
        )
        contexts = [
            Context(instruction=p["instruction"], passages=tuple(index.texts[h.index] for h in row)) for row in hits
        ]
        return Augment(
            contexts=contexts,
            sources=[[h.id for h in row] for row in hits],
            retrieval_seconds=stats.seconds,
            setup_seconds=read + setup,
            index=index,
            details={**retrieval_details(index, stats, p["k"]), "chunks": len(index), "documents": p["documents"]},
        )

    def fingerprint(self, rung: Rung) -> dict[str, Any]:
        from tunegate.documents import collection_hash

        return {"documents_hash": collection_hash(Path(rung.params["documents"]))}

    def sources(self, settings: RagConfig, ctx: LadderContext) -> list[Path]:
        return [ctx.resolve(settings.documents)]

    def preflight(self, settings: RagConfig, ctx: LadderContext) -> tuple[dict[str, Any], str | None]:
        """The document collection is readable and non-empty, checked before any model runs."""
        from tunegate.documents import DocumentError, document_files, load_chunks

        folder = ctx.resolve(settings.documents)
        try:
            chunks = load_chunks(folder, chunk_words=settings.chunk_words, overlap_words=settings.overlap_words)
        except DocumentError as exc:
            return {}, f"{exc}; fix the folder or set baselines.rag.documents"
        return {"documents": {"folder": str(folder), "chunks": len(chunks), "files": len(document_files(folder))}}, None

    def describe(self, details: dict[str, Any]) -> str:
        return f"top {details['k']} of {details['chunks']} document chunks ({details['retriever']}) + input"
