"""Index a corpus and search it, for the rungs that retrieve (retrieved few-shot, RAG)."""

from __future__ import annotations

import time
from typing import Any

from tunegate.ladder.base import LadderContext, Rung


def search_texts(texts: list[str], conversational: bool) -> list[str]:
    """What retrieval indexes and queries: the input, or a conversation's user turns (not its JSON)."""
    if not conversational:
        return texts
    from tunegate.conversations import from_json

    return ["\n".join(t.content for t in from_json(x) if t.role == "user") for x in texts]


def retriever_params(retriever: str, ctx: LadderContext) -> dict[str, Any]:
    """A rung's retrieval settings: the retriever, and for dense/hybrid the embedder and the fusion constant."""
    if retriever == "bm25" or ctx.retrieval is None:
        return {"retriever": retriever}
    return {"retriever": retriever, "embedding_model": ctx.retrieval.embedding_model, "rrf_k": ctx.retrieval.rrf_k}


def index_and_search(rung: Rung, ids: list[str], texts: list[str], queries: list[str], k: int):
    """Index the corpus (setup, timed) and search it: (index, hits per query, search stats, setup seconds)."""
    from tunegate import retrieval

    p = rung.params
    t0 = time.perf_counter()
    if p["retriever"] != "bm25":  # loading the embedding model is setup, not per-request retrieval latency
        retrieval.load_embedder(p.get("embedding_model", retrieval.DEFAULT_EMBEDDER))
    index = retrieval.build_index(
        ids,
        texts,
        kind=p["retriever"],
        embedder=p.get("embedding_model", retrieval.DEFAULT_EMBEDDER),
        rrf_k=p.get("rrf_k", 60),
    )
    setup = time.perf_counter() - t0
    hits, stats = index.search(queries, k)
    return index, hits, stats, setup


def retrieval_details(index, stats, k: int) -> dict[str, Any]:
    return {"retriever": index.kind, "k": k, "leakage_excluded": stats.excluded, "index_cached": index.cached}
