"""The settings every method config shares, and what a compared method takes over from the configured one.

Each method's own settings class lives beside the method (``lora.py``: ``LoraSettings``);
the config's ``method:`` section is validated by the class registered under its ``name``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from tunegate.strict import Strict

AUTO_MIN_LENGTH = 256  # max_length 'auto' is never below this (what a served input may use)
AUTO_MICRO_BATCH = 4  # micro_batch_size 'auto' where no plan measured a better one


class MethodSettings(Strict):
    """Keys every method has. ``answers`` lists the answer kinds (``problems.ANSWER_KINDS``) of the tasks the
    method applies to; ``family`` groups methods that differ only in how the base is held (LoRA and QLoRA): a
    compared sibling takes over all of its settings."""

    answers: ClassVar[tuple[str, ...]] = ("labels", "text", "number")
    family: ClassVar[str | None] = None

    name: str
    max_length: int | Literal["auto"] = Field(
        default="auto",
        description="Max tokens of prompt + answer per example (longer inputs are cut to fit, or refused: "
        "data.too_long). 'auto': the longest row's prompt + answer (train, eval and selection rows), at least "
        f"{AUTO_MIN_LENGTH} so served inputs longer than the data's are not cut short, at most the model's context; "
        "the validation report and the plan show the value chosen. An integer >= 16 fixes it.",
    )
    seed: int = Field(default=0, description="Seed of init, shuffling, splits and dropout.")
    label: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:=,\[\]-]*$",
        max_length=80,
        description="`tunegate compare`: this entry's name in the table (and its folder, methods/<label>/), for one "
        "method listed twice with other settings. Default: the method's name; unlabelled entries of one method are "
        "named by the settings that differ (lora[layers=top:4]).",
    )

    @field_validator("max_length")
    @classmethod
    def _length_floor(cls, value):
        if value != "auto" and value < 16:
            raise ValueError("must be at least 16 tokens, or 'auto' (the longest row, within the model's context)")
        return value

    def cap(self, tokens: int) -> int:
        """``tokens`` cut to max_length (unchanged while an 'auto' is not yet resolved from the data)."""
        return tokens if self.max_length == "auto" else min(tokens, self.max_length)

    @property
    def key(self) -> str:
        """The entry's name in a comparison: its label, or the method's name."""
        return self.label or self.name


LOOP_KEYS = (
    "epochs",
    "max_steps",
    "warmup_ratio",
    "batch_size",
    "micro_batch_size",
    "grad_clip",
    "checkpoint_every",
    "early_stopping",
)


class EarlyStopping(Strict):
    """Evaluate on the selection split during training, keep the best weights, stop when it stops improving."""

    patience: int = Field(
        default=2, ge=1, description="Stop after this many evaluations in a row without a lower selection loss."
    )
    every: int | None = Field(
        default=None, ge=1, description="Evaluate every N optimizer steps (besides each epoch's end); null: epoch ends."
    )
    min_delta: float = Field(
        default=0.0, ge=0.0, description="An evaluation counts as better only if the loss falls by more than this."
    )


class GradientSettings(MethodSettings):
    """Keys of the methods trained by the shared answer-token loop (adapters, soft prompts)."""

    epochs: int = Field(default=1, ge=1, le=100, description="Passes over the training data.")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps.")
    lr: float = Field(default=2e-4, gt=0, lt=10, description="Peak learning rate (AdamW, warmup then linear decay).")
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps spent warming up the lr.")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    batch_size: int = Field(default=16, ge=1, le=1024, description="Examples per optimizer step.")
    micro_batch_size: int | Literal["auto"] | None = Field(
        default="auto",
        description=(
            "Examples per forward/backward pass; gradients accumulate to batch_size: the same update, a quarter of "
            "the activation memory at 4 of 16. 'auto': the plan's choice, the largest micro-batch that computes at "
            "least 20% fewer tokens per epoch (rows sharing a long prompt prefix compute it once per micro-batch) "
            f"and whose estimated peak fits the device and budget.max_memory_gb; else {AUTO_MICRO_BATCH}. "
            "null = the whole batch at once."
        ),
    )
    grad_clip: float = Field(default=1.0, gt=0, description="Gradient-norm clip.")
    checkpoint_every: int | None = Field(
        default=50,
        ge=0,
        description=(
            "Checkpoint the whole training state (weights, optimizer, scheduler, RNG, data position) every N "
            "optimizer steps, besides the end of each epoch; a retry or `tunegate run --resume RUN_ID` continues "
            "from the newest one. null = epoch ends only; 0 = no checkpoints (nothing to resume from)."
        ),
    )

    early_stopping: EarlyStopping | None = Field(
        default=None,
        description="Early stopping on the selection split (needs data.dev or data.dev_fraction): the answer-token "
        "loss on the selection rows (as Hugging Face's eval_loss) is measured at each epoch end (or every `every` "
        "steps); the weights of the best evaluation are kept and training stops after `patience` evaluations "
        "without improvement. The report shows the curve and says whether training converged, over- or under-fit. "
        "E.g. {patience: 2} with epochs: 10.",
    )

    @field_validator("micro_batch_size")
    @classmethod
    def _micro_positive(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError("must be at least 1, 'auto' or null (the whole batch)")
        return value

    @model_validator(mode="after")
    def _micro_fits(self):
        if isinstance(self.micro_batch_size, int) and self.micro_batch_size > self.batch_size:
            raise ValueError(
                f"micro_batch_size {self.micro_batch_size} exceeds batch_size {self.batch_size}; "
                "lower it or set it to null"
            )
        return self

    @property
    def micro(self) -> int:
        """Rows per forward/backward pass: the configured micro-batch, the whole batch for null, and for an 'auto'
        the plan did not resolve, ``AUTO_MICRO_BATCH``."""
        if self.micro_batch_size == "auto":
            return min(AUTO_MICRO_BATCH, self.batch_size)
        return self.micro_batch_size or self.batch_size

    def loop_settings(self) -> dict[str, Any]:
        """The shared training loop's keyword arguments."""
        return dict(
            epochs=self.epochs,
            batch_size=self.batch_size,
            micro_batch_size=None if self.micro_batch_size is None else self.micro,
            lr=self.lr,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            grad_clip=self.grad_clip,
            max_steps=self.max_steps,
            seed=self.seed,
            checkpoint_every=self.checkpoint_every,
            early_stopping=self.early_stopping,
        )


class AutoSettings(MethodSettings):
    """Let the advisor choose the method from the task, the hardware and the budget (see `tunegate plan`)."""

    name: Literal["auto"] = "auto"
    priority: Literal["quality", "speed"] = Field(
        default="quality",
        description="'speed': prefer the cheapest method that applies (a head on frozen features for "
        "classification); 'quality': adapters.",
    )


def inherited(configured: MethodSettings, cls: type[MethodSettings]) -> dict[str, Any]:
    """Settings a compared method (of class ``cls``) takes over from the configured one: methods of one family
    share all of theirs; other loop-trained methods share the data budget (max_length, seed and the loop's
    epochs/steps/batching), not learning rates, which differ by orders of magnitude between methods; any other
    method shares max_length and seed (e.g. a probe's epochs are passes over features, not over the data)."""
    fields = set(cls.model_fields) - {"name"}
    if cls.family is not None and cls.family == type(configured).family:
        keys = fields
    elif issubclass(cls, GradientSettings) and isinstance(configured, GradientSettings):
        keys = fields & {"max_length", "seed", *LOOP_KEYS}
    else:
        keys = fields & {"max_length", "seed"}
    return {k: getattr(configured, k) for k in keys if k in type(configured).model_fields}
