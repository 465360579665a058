"""The baseline ladder: every way of answering without changing a weight.

Rungs, cheapest first: zero-shot; zero-shot with the label prior calibrated
(classification); few-shot with fixed random demonstrations; few-shot with the
demonstrations retrieved per input (bm25 / dense / hybrid); RAG over a document
collection. Each rung turns into an :class:`Augment` (what goes into each eval
prompt besides the input, plus what it cost to get it), and then runs through the
one evaluation path that tuned models use too.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch

from tunegate import retrieval
from tunegate.config import CONVERSATION_FORMATS, TunegateConfig
from tunegate.data import ROW, canonical_columns
from tunegate.documents import collection_hash, load_chunks
from tunegate.prompts import Context
from tunegate.provenance import code_version, sha256_json

CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")  # Zhao et al. 2021, "Calibrate before use"


@dataclass(frozen=True)
class Rung:
    """A baseline rung: how the prompt is built (no weights change). ``params`` is everything that shapes it.

    A calibrated rung (kind ``calibrated``) names its ``base`` rung: it re-uses the base's
    scores on the eval rows and only adds the label offset, so it costs no extra scoring.
    """

    name: str
    kind: str = "zero_shot"  # zero_shot | few_shot | retrieved | rag | calibrated
    shots: int = 0
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    base: Rung | None = None

    def __hash__(self) -> int:  # params is a dict; the name is unique within a run
        return hash((self.name, self.kind))


@dataclass
class Augment:
    """What a rung adds to each prompt, and what getting it cost."""

    shots: list[list[tuple[str, str]]] | None = None  # per input: (input, answer) demonstrations
    contexts: list[Context] | None = None  # per input: retrieved passages (RAG)
    sources: list[list[str]] | None = None  # per input: ids of what was retrieved, best first (recorded in predictions)
    retrieval_seconds: float = 0.0  # all inputs together
    setup_seconds: float = 0.0  # one-off: index build, calibration scoring
    index: retrieval.Index | None = None
    details: dict[str, Any] = field(default_factory=dict)


def baseline_rungs(cfg: TunegateConfig) -> list[Rung]:
    """The configured rungs, cheapest first; with ``calibrated``, each classification rung is followed by its
    calibrated twin."""
    b = cfg.baselines
    rungs = []
    if b.zero_shot:
        rungs.append(Rung("zero_shot"))
    if b.few_shot.enabled:
        rungs.append(Rung("few_shot", kind="few_shot", shots=b.few_shot.k, seed=b.few_shot.seed))
    emb = {"embedding_model": b.retrieval.embedding_model, "rrf_k": b.retrieval.rrf_k}
    if b.retrieved_few_shot.enabled:
        for r in b.retrieved_few_shot.retrievers:
            rungs.append(
                Rung(
                    f"retrieved_few_shot_{r}",
                    kind="retrieved",
                    shots=b.retrieved_few_shot.k,
                    params={"retriever": r, **(emb if r != "bm25" else {})},
                )
            )
    if b.rag is not None:
        rag = b.rag
        for r in rag.retrievers:
            rungs.append(
                Rung(
                    f"rag_{r}",
                    kind="rag",
                    params={
                        "retriever": r,
                        "documents": str(cfg.resolve(rag.documents)),
                        "k": rag.k,
                        "chunk_words": rag.chunk_words,
                        "overlap_words": rag.overlap_words,
                        "instruction": rag.instruction,
                        **(emb if r != "bm25" else {}),
                    },
                )
            )
    if not (b.calibrated and cfg.task == "classification"):
        return rungs
    out = []
    for r in rungs:
        out += [
            r,
            Rung(
                f"{r.name}_calibrated",
                kind="calibrated",
                base=r,
                params={"calibration": b.calibration, "rows": b.calibration_rows},
            ),
        ]
    return out


def rung_cache_key(model_sha: str, data_hash: str, rung: Rung, prompts: str, dtype: str = "float32") -> str:
    """What determines a rung's result: the model, the data, the rung's parameters (documents included),
    ``prompts`` (the exact prompt and answer token ids, :func:`tunegate.evaluation.prompt_fingerprint`),
    the precision it is computed in (bf16 and float32 scores differ slightly) and the code version.

    Config fields that do not change a token (the tuning method, a ``max_length`` that
    cuts no input, the batch size) do not change the key, so such edits reuse the ladder.
    """
    return sha256_json(
        {
            "data": data_hash,
            "model": model_sha,
            "rung": rung_fingerprint(rung),
            "prompts": prompts,
            "dtype": dtype,
            "code": code_version(),
        }
    )


def rung_fingerprint(rung: Rung) -> dict[str, Any]:
    """The rung's settings plus the content of anything it reads besides the data (the documents)."""
    out = {
        "name": rung.name,
        "kind": rung.kind,
        "shots": rung.shots,
        "seed": rung.seed,
        "params": rung.params,
        "base": rung_fingerprint(rung.base) if rung.base is not None else None,
    }
    if rung.kind == "rag":
        out["documents_hash"] = collection_hash(Path(rung.params["documents"]))
    return out


def augment_for(cfg: TunegateConfig, rung: Rung, train: pl.DataFrame, texts: list[str]) -> Augment | None:
    """What ``rung`` puts into the prompts of ``texts`` (None: nothing besides the input)."""
    if rung.kind == "few_shot":
        return fixed_shots(cfg, train, len(texts), rung)
    if rung.kind == "retrieved":
        return retrieved_shots(cfg, train, texts, rung)
    if rung.kind == "rag":
        return rag_contexts(texts, rung, _conversational(cfg))
    return None


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


def _answer(cfg: TunegateConfig, y: str) -> str:
    return cfg.data.label_answers()[y] if cfg.task == "classification" else y


def fixed_shots(cfg: TunegateConfig, train: pl.DataFrame, n: int, rung: Rung) -> Augment:
    shots_df = select_shots(train, k=rung.shots, seed=rung.seed, task=cfg.task)
    text_col, label_col = canonical_columns(cfg.task)
    shots = [(t, _answer(cfg, y)) for t, y in shots_df.select(text_col, label_col).iter_rows()]
    return Augment(shots=[shots] * n, details={"shots": [list(s) for s in shots]})


def _index(rung: Rung, ids: list[str], texts: list[str]) -> retrieval.Index:
    p = rung.params
    if p["retriever"] != "bm25":  # loading the embedding model is setup, not per-request retrieval latency
        retrieval.load_embedder(p.get("embedding_model", retrieval.DEFAULT_EMBEDDER))
    return retrieval.build_index(
        ids,
        texts,
        kind=p["retriever"],
        embedder=p.get("embedding_model", retrieval.DEFAULT_EMBEDDER),
        rrf_k=p.get("rrf_k", 60),
    )


def _retrieve(rung: Rung, ids: list[str], texts: list[str], queries: list[str], k: int):
    """Index the corpus (setup, timed) and search it: (index, hits per query, search stats, setup seconds)."""
    t0 = time.perf_counter()
    index = _index(rung, ids, texts)
    setup = time.perf_counter() - t0
    hits, stats = index.search(queries, k)
    return index, hits, stats, setup


def _retrieval_details(index: retrieval.Index, stats: retrieval.SearchStats, k: int) -> dict[str, Any]:
    return {"retriever": index.kind, "k": k, "leakage_excluded": stats.excluded, "index_cached": index.cached}


def retrieved_shots(cfg: TunegateConfig, train: pl.DataFrame, texts: list[str], rung: Rung) -> Augment:
    """Per input, the ``rung.shots`` most similar train rows as demonstrations (most similar last, nearest the input).

    The corpus is train with repeated texts kept once; the index's leakage guard
    withholds any train row whose text equals the input's (the row itself, when the input is a train row).
    """
    text_col, label_col = canonical_columns(cfg.task)
    corpus = train.unique(subset=[text_col], keep="first", maintain_order=True)
    labels = corpus.get_column(label_col).to_list()
    inputs = corpus.get_column(text_col).to_list()
    ids = [f"train:{r}" for r in corpus.get_column(ROW).to_list()]
    conv = _conversational(cfg)
    queries = _search_texts(texts, conv)
    index, hits, stats, setup = _retrieve(rung, ids, _search_texts(inputs, conv), queries, rung.shots)
    shots = [[(inputs[h.index], _answer(cfg, labels[h.index])) for h in reversed(row)] for row in hits]
    return Augment(
        shots=shots,
        sources=[[h.id for h in row] for row in hits],
        retrieval_seconds=stats.seconds,
        setup_seconds=setup,
        index=index,
        details={**_retrieval_details(index, stats, rung.shots), "corpus_size": len(index)},
    )


def _conversational(cfg: TunegateConfig) -> bool:
    return cfg.data.format in CONVERSATION_FORMATS


def _search_texts(texts: list[str], conversational: bool) -> list[str]:
    """What retrieval indexes and queries: the input, or a conversation's user turns (not its JSON)."""
    if not conversational:
        return texts
    from tunegate.conversations import from_json

    return ["\n".join(t.content for t in from_json(x) if t.role == "user") for x in texts]


def rag_contexts(texts: list[str], rung: Rung, conversational: bool = False) -> Augment:
    """Per input, the top-k chunks of the document collection as context."""
    texts = _search_texts(texts, conversational)
    p = rung.params
    t0 = time.perf_counter()
    chunks = load_chunks(Path(p["documents"]), chunk_words=p["chunk_words"], overlap_words=p["overlap_words"])
    read = time.perf_counter() - t0
    index, hits, stats, setup = _retrieve(rung, [c.id for c in chunks], [c.text for c in chunks], texts, p["k"])
    contexts = [
        Context(instruction=p["instruction"], passages=tuple(index.texts[h.index] for h in row)) for row in hits
    ]
    return Augment(
        contexts=contexts,
        sources=[[h.id for h in row] for row in hits],
        retrieval_seconds=stats.seconds,
        setup_seconds=read + setup,
        index=index,
        details={**_retrieval_details(index, stats, p["k"]), "chunks": len(index), "documents": p["documents"]},
    )


def calibration_offset(label_logprobs: torch.Tensor, target_prior: list[float] | None = None) -> list[float]:
    """Per-label offset that removes the model's label bias measured on ``label_logprobs`` [n, labels]
    (normalized over labels): minus the log of the mean probability, plus the log of ``target_prior``
    (uniform when None). Adding it to a row's label log-probs and taking the argmax is the calibrated prediction."""
    mean_p = torch.softmax(label_logprobs, dim=1).mean(dim=0).clamp_min(1e-12)
    offset = -mean_p.log()
    if target_prior is not None:
        offset = offset + torch.tensor(target_prior, dtype=offset.dtype).clamp_min(1e-12).log()
    return offset.tolist()


def calibration_inputs(cfg: TunegateConfig, train: pl.DataFrame, rung: Rung) -> tuple[list[str], list[float] | None]:
    """The inputs whose mean label probabilities measure the bias, and the label shares to aim for (None: uniform).

    content_free: 'N/A', '' and '[MASK]' (with the base rung's demonstrations or retrieval);
    train: a sample of train inputs (a retrieved rung never retrieves the input itself) and the train label shares.
    No eval row and no eval label is used either way.
    """
    if rung.params["calibration"] == "content_free":
        return list(CONTENT_FREE_INPUTS), None
    text_col, label_col = canonical_columns(cfg.task)
    sample = train.sample(n=min(rung.params["rows"], train.height), seed=cfg.data.split_seed)
    counts = dict(train.get_column(label_col).value_counts().iter_rows())
    return sample.get_column(text_col).to_list(), [
        counts.get(lab, 0) / train.height for lab in cfg.data.label_answers()
    ]
