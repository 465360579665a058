"""Classification: pick one label of a set; each label's answer is scored after the prompt, never parsed."""

from tunegate.problems.base import TaskType, register_task_type


class Classification(TaskType):
    name = "classification"
    description = "pick a label"
    answers = "labels"
    default_instruction = (
        "Classify the input into exactly one of these categories: {labels}. Answer with the category name only."
    )
    unlisted_instruction = "Classify the input into exactly one category. Answer with the category name only."


register_task_type(Classification())
