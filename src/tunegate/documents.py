"""A RAG document collection: a folder of .txt / .md / .jsonl files, read and chunked.

Chunks follow paragraphs (blank lines) and are packed up to ``chunk_words`` words;
a paragraph longer than that is cut into windows overlapping by ``overlap_words``.
Each chunk has a stable id ``<relative path>#<n>`` (jsonl: ``<path>:<line>#<n>``)
that the predictions record, so every answer names the chunks it was given.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".txt", ".md", ".jsonl")


class DocumentError(Exception):
    """A document collection that cannot be used: the message says which file and why."""


@dataclass(frozen=True)
class Chunk:
    """A passage of a RAG document: its text and where it came from."""

    id: str
    text: str


def document_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise DocumentError(
            f"{folder}: document folder not found (baselines.rag.documents, relative to the config file)"
        )
    if not folder.is_dir():
        raise DocumentError(f"{folder}: not a folder; baselines.rag.documents names a folder of .txt/.md/.jsonl files")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise DocumentError(f"{folder}: no .txt, .md or .jsonl files in the document folder")
    return files


def collection_hash(folder: Path) -> str:
    """Content hash of the collection (names and bytes), for cache keys and provenance."""
    h = hashlib.sha256()
    for p in document_files(folder):
        h.update(str(p.relative_to(folder)).encode() + b"\x00" + p.read_bytes() + b"\x01")
    return h.hexdigest()


def _read(path: Path, rel: str) -> list[tuple[str, str]]:
    """(source id, text) pairs of one file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DocumentError(f"{rel}: not UTF-8 text") from None
    if path.suffix.lower() != ".jsonl":
        return [(rel, raw)]
    out = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"{rel} line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str):
            raise DocumentError(f"{rel} line {n}: each line must be an object with a string field 'text'")
        title = rec.get("title")
        text = f"{title}\n\n{rec['text']}" if isinstance(title, str) and title.strip() else rec["text"]
        out.append((f"{rel}:{rec.get('id', n)}", text))
    return out


def chunk_text(text: str, *, chunk_words: int, overlap_words: int) -> list[str]:
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks: list[str] = []
    current: list[str] = []
    for para in paragraphs:
        words = para.split()
        if len(words) > chunk_words:  # long paragraph: overlapping windows of its own
            if current:
                chunks.append(" ".join(current))
                current = []
            step = max(1, chunk_words - overlap_words)
            for start in range(0, len(words), step):
                chunks.append(" ".join(words[start : start + chunk_words]))
                if start + chunk_words >= len(words):
                    break
            continue
        if current and len(current) + len(words) > chunk_words:
            chunks.append(" ".join(current))
            current = []
        current.extend(words)
    if current:
        chunks.append(" ".join(current))
    return chunks


def load_chunks(folder: Path, *, chunk_words: int = 120, overlap_words: int = 20) -> list[Chunk]:
    """Every chunk of every document in ``folder``, in a stable order."""
    chunks: list[Chunk] = []
    for path in document_files(folder):
        rel = str(path.relative_to(folder))
        for source, text in _read(path, rel):
            for n, piece in enumerate(chunk_text(text, chunk_words=chunk_words, overlap_words=overlap_words)):
                chunks.append(Chunk(id=f"{source}#{n}", text=piece))
    if not chunks:
        raise DocumentError(f"{folder}: the documents contain no text")
    return chunks
