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
    instruction_templates = (
        "Read the input and decide which category it belongs to: {labels}. Reply with the category only.",
        "Possible labels: {labels}. Which label fits the input best? Answer with one label.",
        "You are an expert annotator. Assign the input one of these labels: {labels}.",
    )


register_task_type(Classification())
