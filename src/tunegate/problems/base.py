"""What a task type is: the capabilities shared code asks instead of comparing task names (scikit-learn's tags).

A task type declares how a row becomes a prompt and a reference (its columns, its default instruction), how
answers are produced and judged (``answers``: scored labels, generated text or a number; the metrics, the
answering path, serving and the methods read it), and what validation checks (a label set, conversation
files). Nothing heavy is imported here: the config reads the registry.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

# how a task's answers are produced and compared: a label scored among the label set, generated text judged
# against references, or a number the model writes (or a regression head predicts)
AnswerKind = Literal["labels", "text", "number"]
ANSWER_KINDS: tuple[str, ...] = ("labels", "text", "number")


class TaskType:
    """One kind of task. Subclass, set the class attributes, and ``register_task_type`` an instance."""

    name: ClassVar[str]
    description: ClassVar[str]
    answers: ClassVar[AnswerKind]
    # the normalized data's two columns (input, reference), and the data settings naming them in the files
    columns: ClassVar[tuple[str, str]] = ("text", "label")
    source_keys: ClassVar[tuple[str, str]] = ("text_column", "label_column")
    conversations: ClassVar[bool] = False  # reads conversation files (OpenAI messages, ShareGPT, Alpaca)
    default_instruction: ClassVar[str] = ""  # put before the input when prompt.instruction is not set
    unlisted_instruction: ClassVar[str | None] = None  # ... without '{labels}' (prompt.list_labels: false)
    # other instructions a prompt search (baselines.optimized_prompt) starts from
    instruction_templates: ClassVar[tuple[str, ...]] = ()

    def instruction(self, list_labels: bool = True) -> str:
        """The default instruction: with the '{labels}' list, or without it where the task has such a form."""
        if not list_labels and self.unlisted_instruction is not None:
            return self.unlisted_instruction
        return self.default_instruction

    @property
    def has_labels(self) -> bool:
        """A label set: declared or inferred labels, stratified sampling, calibrated rungs, label checks."""
        return self.answers == "labels"

    @property
    def scored(self) -> bool:
        """Answers are scored (each label's log-likelihood), not decoded."""
        return self.answers == "labels"

    @property
    def generates(self) -> bool:
        """Answers are free text, judged against one or more references per input."""
        return self.answers == "text"

    @property
    def numeric(self) -> bool:
        """Answers are numbers (an answer without one counts as the train mean)."""
        return self.answers == "number"

    def source_columns(self, data: Any) -> tuple[str, str]:
        """The file's columns holding the input and the reference (``data.text_column`` ...)."""
        return tuple(getattr(data, key) for key in self.source_keys)  # type: ignore[return-value]

    def target_text(self, reference: str, label_answers: dict[str, str]) -> str:
        """What the model is trained to write for a reference: a label's answer word, else the reference as
        written (a number, a text), stripped."""
        return label_answers[reference] if self.has_labels else reference.strip()

    def __repr__(self) -> str:
        return f"<task type {self.name}: {self.answers}>"


TASK_TYPES: dict[str, TaskType] = {}


def register_task_type(task_type: TaskType) -> TaskType:
    """Add a task type under its name (a value of the config's ``task:`` at once); refuses a name twice."""
    if task_type.answers not in ANSWER_KINDS:
        raise ValueError(f"task type '{task_type.name}': answers must be one of {ANSWER_KINDS}")
    if task_type.name in TASK_TYPES:
        raise ValueError(f"task type '{task_type.name}' registered twice")
    TASK_TYPES[task_type.name] = task_type
    return task_type


def unregister_task_type(name: str) -> None:
    """Remove a task type (tests that register one of their own)."""
    TASK_TYPES.pop(name, None)


def task_type(name: str) -> TaskType:
    try:
        return TASK_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown task type '{name}'; registered: {', '.join(TASK_TYPES)}") from None
