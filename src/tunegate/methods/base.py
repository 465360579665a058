"""The small interface every tuning method implements, and the name registry."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

ARTIFACT_META = "tunegate.json"


@dataclass
class TrainedArtifact:
    """Where a method saved its result, and how it was trained."""

    artifact_dir: Path
    trainable_params: int
    total_params: int
    train_stats: Any  # tunegate.training.TrainStats
    base_footprint_mb: float | None = None  # memory of the frozen base weights (get_memory_footprint)


class TuningMethod:
    """Train on (prompt_ids, answer_ids) pairs, save to a folder, load back for scoring.

    A method never sees Prefect or files other than its artifact folder; the base model
    is given as a local Hugging Face folder path.
    """

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ("classification", "generation")

    def train(self, *, base_path: str, examples: list[tuple[list[int], list[int]]], cfg: Any, pad_id: int,
              out_dir: Path, progress: bool = True) -> TrainedArtifact:
        raise NotImplementedError

    def load_for_inference(self, *, base_path: str, artifact_dir: Path):
        """A model ready for ``scoring`` (eval mode, merged where that makes inference cheaper)."""
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


def register(name: str):
    def deco(cls: type[TuningMethod]) -> type[TuningMethod]:
        if name in METHODS:
            raise ValueError(f"method '{name}' registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


def get_method(name: str) -> TuningMethod:
    try:
        return METHODS[name]()
    except KeyError:
        raise KeyError(f"unknown tuning method '{name}'; registered: {', '.join(sorted(METHODS))}") from None
