"""Optimized prompt: an instruction and demonstrations searched on the selection split, then judged on eval.

Registered here with its settings (``settings.py``, light); the search (``rung.py``) is imported when the ladder
first uses it.
"""

from tunegate.ladder.base import register_rung
from tunegate.ladder.optimized_prompt.settings import OptimizedPromptConfig


def _shorthand(value):
    """`optimized_prompt: true` turns it on with its defaults."""
    return {"enabled": value} if isinstance(value, bool) else value


register_rung(
    "optimized_prompt",
    settings=OptimizedPromptConfig,
    default=OptimizedPromptConfig,
    description="The optimized-prompt rung: an instruction and demonstrations searched on the selection split "
    "(`optimized_prompt: true`; off by default: it needs data.dev or data.dev_fraction).",
    implementation="tunegate.ladder.optimized_prompt.rung:OptimizedPrompt",
    shorthand=_shorthand,
)
