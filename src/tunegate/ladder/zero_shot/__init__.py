"""Zero-shot: the instruction and the input, nothing else.

Registered here with its setting (a flag); the implementation (``rung.py``) is imported when the
ladder first uses it.
"""

from tunegate.ladder.base import register_rung

register_rung(
    "zero_shot",
    settings=bool,
    default=lambda: True,
    description="Measure the zero-shot baseline.",
    implementation="tunegate.ladder.zero_shot.rung:ZeroShot",
)
