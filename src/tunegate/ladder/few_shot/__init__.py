"""Few-shot: k fixed random train rows as demonstrations (labels take turns, so each is shown).

Registered here with its settings (``settings.py``, light); the implementation (``rung.py``) is imported when the
ladder first uses it.
"""

from tunegate.ladder.base import enabled_or_k, register_rung
from tunegate.ladder.few_shot.settings import FewShotConfig

register_rung(
    "few_shot",
    settings=FewShotConfig,
    default=FewShotConfig,
    description="The few-shot rung: k fixed random train rows as demonstrations (`few_shot: 4`, `few_shot: false`).",
    implementation="tunegate.ladder.few_shot.rung:FewShot",
    shorthand=enabled_or_k,
)
