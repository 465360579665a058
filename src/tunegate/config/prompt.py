"""The ``prompt:`` section: how an example becomes a prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunegate.strict import Strict as _Strict


class PromptConfig(_Strict):
    """How an example becomes a prompt: the model's chat template, or a plain text format for base models."""

    system: str | None = Field(
        default="You are a helpful assistant.",
        description="System message; null uses the chat template's default (often long).",
    )
    instruction: str | None = Field(
        default=None,
        description=(
            "Task instruction put before the input. '{labels}' is replaced by the label list. "
            "Default: a classification instruction listing the labels; none for generation."
        ),
    )
    input_prefix: str = Field(default="Input: ", description="Text put right before the input.")
    format: Literal["auto", "chat", "plain"] = Field(
        default="auto",
        description="'chat': the model's chat template; 'plain': a text format for base models (instruction, "
        "then 'Input: ...' / 'Answer: ...' lines); 'auto': chat when the tokenizer has a chat template, else plain. "
        "Used identically in training, evaluation, predict and serve.",
    )
