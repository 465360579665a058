"""The small interface every tuning method implements, and the name registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ARTIFACT_META = "tunegate.json"


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


class TuningMethod:
    """Train on a :class:`TrainingSet`, save to a folder, load back as an ``Answerer``.

    A method never sees Prefect or files other than its artifact folder (and the shared
    cache); the base model is given as a local Hugging Face folder path. The tasks a
    method applies to are declared once, on its config class.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]

    @classmethod
    def tasks(cls) -> tuple[str, ...]:
        return cls.config_class.tasks

    def train(self, *, base_path: str, data: TrainingSet, cfg: Any, out_dir: Path, progress: bool = True) -> TrainedArtifact:
        raise NotImplementedError

    def load_for_inference(self, *, base_path: str, artifact_dir: Path):
        """A ``tunegate.scoring.Answerer`` (eval mode, merged where that makes inference cheaper)."""
        raise NotImplementedError

    @staticmethod
    def write_meta(artifact_dir: Path, meta: dict[str, Any]) -> None:
        """Add ``meta`` to the artifact's tunegate.json (the method writes its config; the pipeline adds the rest)."""
        path = Path(artifact_dir) / ARTIFACT_META
        current = json.loads(path.read_text()) if path.is_file() else {}
        path.write_text(json.dumps({**current, **meta}, indent=2))

    @staticmethod
    def read_meta(artifact_dir: Path) -> dict[str, Any]:
        return json.loads((Path(artifact_dir) / ARTIFACT_META).read_text())


METHODS: dict[str, type[TuningMethod]] = {}


def register(name: str, config_class: type):
    """Register a method under ``name``; ``config_class`` is its config model (whose ``name`` tag is ``name``)."""

    def deco(cls: type[TuningMethod]) -> type[TuningMethod]:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        if config_class.model_fields["name"].default != name:
            raise ValueError(f"config class {config_class.__name__} is not tagged '{name}'")
        cls.name = name
        cls.config_class = config_class
        METHODS[name] = cls
        return cls

    return deco


def get_method(name: str) -> TuningMethod:
    try:
        return METHODS[name]()
    except KeyError:
        raise KeyError(f"unknown tuning method '{name}'; registered: {', '.join(sorted(METHODS))}") from None
