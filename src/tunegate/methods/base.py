"""The small interface every tuning method implements, and the name registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tunegate.methods.settings import AutoSettings
from tunegate.problems import TASK_TYPES, task_type

ARTIFACT_META = "tunegate.json"
CHECKPOINTS = "checkpoints"  # resumable training state inside an artifact folder; never copied to the registry
CALIBRATION_STEPS = 3  # optimizer steps of a loop-trained method's calibration; the first is warm-up, not timed


@dataclass
class SelectionLabels:
    """Classification's selection split as the scorer reads it: each row's prompt, every label's answer tokens and
    the row's label: the selection accuracy at each epoch end (the overfitting guard's curve)."""

    prompts: list[list[int]]
    answers: list[list[int]]
    labels: list[int]
    pad_id: int


@dataclass
class TrainingSet:
    """The training rows as token ids, as every method needs them.

    LM methods learn ``answer_ids`` after ``prompt_ids``; the linear probe learns
    ``label_index`` from the prompt's features. ``fingerprint`` identifies the rows,
    prompts and base model (it keys the probe's feature cache).
    """

    task: str
    prompt_ids: list[list[int]]
    answer_ids: list[list[int]]
    pad_id: int
    fingerprint: str
    labels: list[str] = field(default_factory=list)  # classification: label order of scores and of a head
    label_index: list[int] | None = None  # classification: each row's label as an index into labels
    targets: list[float] | None = None  # regression: each row's number
    instruction: str = ""  # the task instruction (prompt tuning starts its soft prompt from it by default)
    selection: list[tuple[list[int], list[int]]] | None = None  # the selection split's pairs (early stopping)
    selection_labels: "SelectionLabels | None" = None  # classification: the selection split scored by its labels

    @property
    def examples(self) -> list[tuple[list[int], list[int]]]:
        return list(zip(self.prompt_ids, self.answer_ids))

    def __len__(self) -> int:
        return len(self.prompt_ids)

    def subset(self, rows: list[int]) -> "TrainingSet":
        return TrainingSet(
            task=self.task,
            prompt_ids=[self.prompt_ids[i] for i in rows],
            answer_ids=[self.answer_ids[i] for i in rows],
            pad_id=self.pad_id,
            fingerprint=f"{self.fingerprint}:subset:{hash(tuple(rows))}" if self.fingerprint else "",
            labels=self.labels,
            label_index=None if self.label_index is None else [self.label_index[i] for i in rows],
            targets=None if self.targets is None else [self.targets[i] for i in rows],
            instruction=self.instruction,
        )


@dataclass
class TrainedArtifact:
    """Where a method saved its result, and how it was trained."""

    artifact_dir: Path
    trainable_params: int
    total_params: int
    train_stats: Any  # tunegate.training.TrainStats
    base_footprint_mb: float | None = None  # memory of the frozen base weights (get_memory_footprint)


@dataclass
class AdviceContext:
    """What the advisor (``method: auto``) knows when it asks each method whether its rule applies."""

    task: str
    priority: str
    device: str
    memory_gb: float  # of the device that trains
    base_params: int
    estimates: dict[str, Any]  # method name -> its measured ``MethodEstimate`` (applicable, no error)

    @property
    def base16_gb(self) -> float:
        return self.base_params * 2 / 2**30

    def training_state_gb(self, method: str) -> float:
        """Adapters/optimizer state/activations on top of the base: as measured by the method's calibration, or
        estimated from the config where it was not run (it would not fit)."""
        e = self.estimates.get(method)
        if e is None:
            return 0.0
        if not e.calibrated and e.est_memory is not None:
            return e.est_memory.trainable_gb + e.est_memory.activations_gb + e.est_memory.runtime_gb
        return max(0.0, e.est_peak_mb - (e.base_footprint_mb or 0)) / 1024

    def base16_fits(self, method: str) -> bool:
        """The base in 16-bit plus the method's measured training state fits 90% of the device memory."""
        from tunegate.footprint import MEMORY_HEADROOM

        return self.base16_gb + self.training_state_gb(method) <= self.memory_gb * MEMORY_HEADROOM


@dataclass(frozen=True)
class Rule:
    """One line of the advisor's decision guide: lower ``rank`` is tried first; ``why`` is shown when it fires."""

    rank: int
    applies: bool
    why: str


@dataclass(frozen=True)
class MicroBatchOption:
    """One micro-batch size for a loop-trained method: the decoder tokens an epoch computes with it (rows sharing
    their first tokens run them once per micro-batch) and its training memory from the model's config."""

    micro_batch_size: int
    tokens_per_epoch: float
    memory_gb: float


class TuningMethod:
    """Train on a :class:`TrainingSet`, save to a folder, load back as an ``Answerer``.

    A method never sees Prefect or files other than its artifact folder (and the shared
    cache); the base model is given as a local Hugging Face folder path. Everything the
    rest of the pipeline needs to know about a method is asked of it here: the tasks it
    applies to (on its settings class), how the plan calibrates and scales its cost, the
    advisor's rules for it and what its loss curve is plotted against.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    loss_axis: ClassVar[str] = "optimizer step"  # what one point of its loss curve is

    @classmethod
    def applies_to(cls, task: str) -> bool:
        return applies(cls.config_class, task)

    def train(
        self, *, base_path: str, data: TrainingSet, cfg: Any, out_dir: Path, progress: bool = True
    ) -> TrainedArtifact:
        raise NotImplementedError

    def load_for_inference(self, *, base_path: str, artifact_dir: Path):
        """A ``tunegate.scoring.Answerer`` (eval mode, merged where that makes inference cheaper)."""
        raise NotImplementedError

    def load_shared(self, *, bases, base_path: str, artifact_dir: Path, name: str):
        """An answerer on the base model ``bases`` (``tunegate.adapters.SharedBases``) already holds, for a server
        with several versions of one base (``name``: the version's adapter name); None when the method needs its
        own copy of the base (then ``load_for_inference`` is used)."""
        return None

    # ---- the plan: a short calibration run here, scaled to the full training set

    warm_up_before_calibration: ClassVar[bool] = False  # an untimed run first (else the first step is not timed)

    def calibration(self, data: TrainingSet, cfg: Any) -> tuple[int, Any]:
        """How many rows the calibration trains on, and the settings it uses."""
        return min(len(data), 64), cfg

    def full_train_tokens(self, data: TrainingSet, cfg: Any) -> int:
        """Tokens the full training run processes."""
        return sum(len(p) + len(a) for p, a in data.examples)

    def scale_to_full(self, stats: Any, *, full_tokens: int, n_rows: int, n_calibration: int) -> tuple[float, float]:
        """(tokens/s measured, estimated seconds of the full run) from the calibration run's ``TrainStats``."""
        timed_s = sum(stats.step_seconds[1:]) or sum(stats.step_seconds)
        timed_tok = sum(stats.step_tokens[1:]) or sum(stats.step_tokens)
        tok_s = timed_tok / timed_s if timed_s else float("inf")
        return tok_s, full_tokens / tok_s

    # ---- the advisor (`method: auto`)

    data_parallel = False  # trains in several processes when hardware.processes > 1 (the shared loop does)

    def training_memory(self, shape, cfg: Any, placement, data: TrainingSet):
        """Peak training memory from the model's shape alone (``footprint.training_memory``), or None when the
        method has no estimate. The plan skips calibrating a method whose estimate exceeds the device."""
        return None

    def micro_batch_options(self, shape, cfg: Any, placement, data: TrainingSet) -> list[MicroBatchOption]:
        """The configured micro-batch first, then each larger one the same update allows (the plan suggests one
        that computes far fewer tokens and fits the memory); empty for a method without micro-batches."""
        return []

    def advice(self, ctx: AdviceContext) -> list[Rule]:
        """The advisor's rules that can choose this method (none: it is never chosen automatically)."""
        return []

    def why_not(self, ctx: AdviceContext) -> str:
        """Why the advisor did not choose it although it fits the budget."""
        return "ranked below by the rules above"

    @staticmethod
    def write_meta(artifact_dir: Path, meta: dict[str, Any]) -> None:
        """Add ``meta`` to the artifact's tunegate.json (the method writes its config; the pipeline adds the rest)."""
        path = Path(artifact_dir) / ARTIFACT_META
        current = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**current, **meta}, indent=2))

    @staticmethod
    def read_meta(artifact_dir: Path) -> dict[str, Any]:
        return json.loads((Path(artifact_dir) / ARTIFACT_META).read_text())


@dataclass
class MethodEntry:
    """A registered method: its name, its settings class (light: the config validates ``method:`` with it) and
    its implementation, a ``TuningMethod`` class or the ``"module:Class"`` path imported on first use."""

    name: str
    config_class: type
    implementation: type[TuningMethod] | str

    def applies_to(self, task: str) -> bool:
        return applies(self.config_class, task)

    def load(self) -> type[TuningMethod]:
        """The implementation class, imported now if it was registered by path (torch, peft load here)."""
        if isinstance(self.implementation, str):
            import importlib

            module, _, attr = self.implementation.partition(":")
            self.implementation = _bind(getattr(importlib.import_module(module), attr), self.name, self.config_class)
        return self.implementation


METHODS: dict[str, MethodEntry] = {}


def _bind(cls: type[TuningMethod], name: str, config_class: type) -> type[TuningMethod]:
    cls.name = name
    cls.config_class = config_class
    return cls


def _check_new(name: str, config_class: type) -> None:
    if name in METHODS:
        raise ValueError(f"method '{name}' registered twice")
    if config_class.model_fields["name"].default != name:
        raise ValueError(f"config class {config_class.__name__} is not tagged '{name}'")


def register(name: str, config_class: type):
    """Register a method class under ``name`` now; ``config_class`` is its settings (whose ``name`` tag is
    ``name``). A method defined in a user's module or a test registers this way."""

    def deco(cls: type[TuningMethod]) -> type[TuningMethod]:
        _check_new(name, config_class)
        METHODS[name] = MethodEntry(name, config_class, _bind(cls, name, config_class))
        return cls

    return deco


def register_lazy(name: str, config_class: type, implementation: str) -> None:
    """Register a method whose implementation (``"package.module:Class"``) is imported when first used; its
    settings class is registered at once, so the config validates it without loading torch."""
    _check_new(name, config_class)
    METHODS[name] = MethodEntry(name, config_class, implementation)


def implementation_getattr(name: str, package: str):
    """A method package's module ``__getattr__`` (PEP 562): a name the package itself lacks (``LoRA``,
    ``ADAPTER_DIR``) is looked up in the method's implementation module, imported on first use."""

    def __getattr__(attr: str):
        import sys

        module = sys.modules[METHODS[name].load().__module__]
        try:
            return getattr(module, attr)
        except AttributeError:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}") from None

    return __getattr__


def get_method(name: str) -> TuningMethod:
    try:
        entry = METHODS[name]
    except KeyError:
        raise KeyError(f"unknown tuning method '{name}'; registered: {', '.join(sorted(METHODS))}") from None
    return entry.load()()


def unregister(name: str) -> None:
    """Remove a registered method (tests that register one of their own)."""
    METHODS.pop(name, None)


def applies(settings_class: type, task: str) -> bool:
    """Whether a method (by its settings class) applies to a task type: it learns the task's answer kind."""
    return task_type(task).answers in settings_class.answers


def task_types_of(settings_class: type) -> list[str]:
    """The registered task types a method applies to."""
    return [name for name in TASK_TYPES if applies(settings_class, name)]


def applicable_methods(task: str) -> dict[str, type]:
    """The registered methods whose settings class says they apply to ``task``: name -> settings class."""
    return {n: m.config_class for n, m in METHODS.items() if applies(m.config_class, task)}


def settings_class(name: str) -> type:
    """The settings class of a method name (``auto`` included: the advisor picks a method)."""
    if name == "auto":
        return AutoSettings
    try:
        return METHODS[name].config_class
    except KeyError:
        raise KeyError(name) from None


def settings_from_dict(d: dict[str, Any]) -> Any:
    """A method's settings from their dumped form (e.g. the plan's chosen method, a registered version's)."""
    return settings_class(d["name"])(**d)
