"""Retrieved few-shot: per input, the k train rows most similar to it as demonstrations (one rung per retriever).

Registered here with its settings (``settings.py``, light); the implementation (``rung.py``) is imported when the
ladder first uses it.
"""

from tunegate.ladder.base import enabled_or_k, register_rung
from tunegate.ladder.retrieved_few_shot.settings import RetrievedFewShotConfig

register_rung(
    "retrieved_few_shot",
    settings=RetrievedFewShotConfig,
    default=RetrievedFewShotConfig,
    description=(
        "Few-shot with retrieved demonstrations: the k train rows most similar to each input go into its prompt "
        "(`retrieved_few_shot: 4`, `retrieved_few_shot: false`)."
    ),
    implementation="tunegate.ladder.retrieved_few_shot.rung:RetrievedFewShot",
    shorthand=enabled_or_k,
)
