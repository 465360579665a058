"""RAG: per input, the top-k chunks of a document collection as context (one rung per retriever).

Registered here with its settings (``settings.py``, light); the implementation (``rung.py``) is imported when the
ladder first uses it.
"""

from tunegate.ladder.base import register_rung
from tunegate.ladder.rag.settings import RagConfig, folder_shorthand

register_rung(
    "rag",
    settings=RagConfig | None,
    default=lambda: None,
    description="RAG rung(s) over a document collection; null = none (`rag: docs/` names the folder).",
    implementation="tunegate.ladder.rag.rung:Rag",
    shorthand=folder_shorthand,
)
