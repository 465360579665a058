"""Conversation formats (task: generation, JSONL): read by ``tunegate.conversations``, not as a table."""

from __future__ import annotations

from tunegate.formats.base import DataFormat, register_format


class Chat(DataFormat):
    conversation = True

    def __init__(self, name: str, description: str):
        self.name, self.description = name, description


register_format(
    Chat("messages", "OpenAI's fine-tuning format, a `messages` list per line; per-message weight 0|1 honoured")
)
register_format(Chat("sharegpt", "`conversations` with from/value per line"))
register_format(Chat("alpaca", "instruction/input/output per line"))
