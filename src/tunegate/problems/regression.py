"""Regression: predict a number (the model writes it and the first number in the answer is taken)."""

from tunegate.problems.base import TaskType, register_task_type


class Regression(TaskType):
    name = "regression"
    description = "predict a number (text_column + label_column holding numbers)"
    answers = "number"
    default_instruction = "Predict the numeric score of the input. Answer with the number only."


register_task_type(Regression())
