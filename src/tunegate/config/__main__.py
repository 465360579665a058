"""``python -m tunegate.config`` prints the config reference (docs/CONFIG.md)."""

from tunegate.config.reference import reference_markdown

print(reference_markdown())
