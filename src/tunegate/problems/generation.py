"""Generation: write text, judged against every reference of the input (conversation files too)."""

from tunegate.problems.base import TaskType, register_task_type


class Generation(TaskType):
    name = "generation"
    description = "write text"
    answers = "text"
    columns = ("input", "target")
    source_keys = ("input_column", "target_column")
    conversations = True


register_task_type(Generation())
