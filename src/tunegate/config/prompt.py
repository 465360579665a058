"""The ``prompt:`` section: how an example becomes a prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
    list_labels: bool = Field(
        default=True,
        description="Classification: list the labels in the default instruction. false drops the list (scoring "
        "reads each label's answer, not the list): with many labels it is most of every prompt (validation and "
        "the plan say how many tokens it costs per request); the zero-shot rung may score lower without it.",
    )

    @model_validator(mode="after")
    def _labels_listed(self):
        if not self.list_labels and self.instruction is not None and "{labels}" in self.instruction:
            raise ValueError(
                "prompt.instruction contains '{labels}' but prompt.list_labels is false: remove '{labels}' from the "
                "instruction, or set list_labels: true"
            )
        return self
