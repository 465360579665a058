"""Task types, registered by the name the config's ``task:`` takes (``tasks/`` is Prefect's).

Shared code asks a task type's capabilities (``answers``, ``has_labels``, ``columns``, ``conversations``,
``default_instruction``) instead of comparing task names. Adding a task type: one module here (a ``TaskType``
subclass and its ``register_task_type`` line), its import line below, and a row in
``tests/unit/test_problems.py``; a test registers one and runs it through validation, the ladder, a method and
the gate with no other edit.
"""

from tunegate.problems.base import (
    ANSWER_KINDS,
    TASK_TYPES,
    AnswerKind,
    TaskType,
    register_task_type,
    task_type,
    unregister_task_type,
)

# each registers itself; the order here is the order in the docs
# isort: off
from tunegate.problems import classification, generation, regression  # noqa: E402, F401
# isort: on

__all__ = [
    "ANSWER_KINDS",
    "TASK_TYPES",
    "AnswerKind",
    "TaskType",
    "register_task_type",
    "task_type",
    "unregister_task_type",
]
