"""What a rung is, what it adds to a prompt, and the registry of rung kinds.

A rung kind is registered with its settings under ``baselines:`` (:func:`register_rung`; the config reads
them from the registry) and implemented by a :class:`RungKind`: how it expands into rungs (one per retriever,
say), what it adds to each prompt (:class:`Augment`: demonstrations, context), what its cache key must cover besides its
settings (a document collection's content), the files it reads besides the data (change detection,
validation) and its description in words (report). Calibration wraps any rung (``calibration.py``).

This module and each rung's ``__init__`` and ``settings`` import nothing heavy: the config loads them; a rung's
implementation (``rung.py``) is imported when the ladder first uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from tunegate.problems import task_type

Retriever = Literal["bm25", "dense", "hybrid"]


@dataclass(frozen=True)
class Rung:
    """A baseline rung: how the prompt is built (no weights change). ``params`` is everything that shapes it.

    ``kind`` is the registered rung kind that builds it. A calibrated rung (kind ``calibrated``) names its
    ``base`` rung: it re-uses the base's scores on the eval rows and only adds the label offset.
    """

    name: str
    kind: str = "zero_shot"
    params: dict[str, Any] = field(default_factory=dict)
    base: Rung | None = None

    def __hash__(self) -> int:  # params is a dict; the name is unique within a run
        return hash((self.name, self.kind))


@dataclass
class Augment:
    """What a rung adds to each prompt, and what getting it cost."""

    shots: list[list[tuple[str, str]]] | None = None  # per input: (input, answer) demonstrations
    contexts: list[Any] | None = None  # per input: a prompts.Context of retrieved passages (RAG)
    sources: list[list[str]] | None = None  # per input: ids of what was retrieved, best first (recorded in predictions)
    retrieval_seconds: float = 0.0  # all inputs together
    setup_seconds: float = 0.0  # one-off: index build, calibration scoring
    index: Any = None  # a retrieval.Index the rung built (copied into the run folder)
    details: dict[str, Any] = field(default_factory=dict)
    instruction: str | None = None  # replaces prompt.instruction ('{labels}' is still filled in): a searched prompt


@dataclass
class Scored:
    """One prompt candidate scored on some rows (``SearchEnv.score``)."""

    metric: float  # the gate metric on those rows
    predictions: list[str]
    references: list[str]
    prompt_tokens: int  # all rows together
    seconds: float

    @property
    def correct(self) -> list[bool]:
        return [p == r for p, r in zip(self.predictions, self.references)]


@dataclass
class SearchEnv:
    """What a rung that searches its prompt (:meth:`RungKind.search`) may use, built by the evaluation: the train
    and selection rows (polars frames), the configured instruction ('{labels}' not yet filled in), the base model
    scoring a candidate on rows (``score(instruction, shots per row or None, frame)``) and writing text
    (``generate(request, max_new_tokens)``: the request as a user message, the model's reply)."""

    train: Any
    selection: Any
    instruction: str
    score: Callable[[str, Any, Any], Scored]
    generate: Callable[[str, int], str]


@dataclass(frozen=True)
class LadderContext:
    """What the rungs need to know about the run besides their own settings (not the whole config); built by
    ``TunegateConfig.ladder_context``."""

    task: str
    label_answers: dict[str, str]  # classification: label -> answer text; empty otherwise
    conversational: bool  # the inputs are conversations (JSON turns): retrieval reads their user turns
    split_seed: int  # seeds the calibration sample
    config_dir: Path = Path(".")  # relative paths in rung settings (documents) are relative to the config file
    retrieval: Any = None  # baselines.retrieval: the dense embedder and the hybrid fusion constant
    metric: str = "accuracy"  # the gate metric (what a searching rung maximises)
    selection: bool = False  # the data has a selection split (data.dev / dev_fraction): a search may run on it

    def resolve(self, path: Path | str) -> Path:
        path = Path(path)
        return path if path.is_absolute() else (self.config_dir / path).resolve()

    def answer(self, y: str) -> str:
        """The answer text a demonstration shows for a reference (a label's answer word, or the text itself)."""
        return self.label_answers.get(y, y) if self.has_labels else y

    @property
    def has_labels(self) -> bool:
        """The task type has a label set (demonstrations show answer words; rungs get calibrated twins)."""
        return task_type(self.task).has_labels


class RungKind:
    """What a rung kind does (its implementation; its settings are registered separately, see
    :func:`register_rung`). Every method has a default but ``expand`` and ``describe``."""

    key: str = ""  # set from the registration

    def expand(self, settings: Any, ctx: LadderContext) -> list[Rung]:
        """The rungs these settings measure (several for several retrievers)."""
        raise NotImplementedError

    def augment(self, rung: Rung, ctx: LadderContext, train: Any, texts: list[str]) -> Augment | None:
        """What ``rung`` puts into the prompts of ``texts`` besides the input (None: nothing)."""
        return None

    def fingerprint(self, rung: Rung) -> dict[str, Any]:
        """What the cache key must cover besides the rung's params (the content of files it reads)."""
        return {}

    def sources(self, settings: Any, ctx: LadderContext) -> list[Path]:
        """Files or folders it reads besides the data (retraining on change watches them)."""
        return []

    def preflight(self, settings: Any, ctx: LadderContext) -> tuple[dict[str, Any], str | None]:
        """Checked with the data before any model runs: (stats for the validation report, an error or None)."""
        return {}, None

    def describe(self, details: dict[str, Any]) -> str:
        """What it puts into the prompt, in words, from its result's details."""
        raise NotImplementedError

    searches: bool = False  # a rung whose prompt is chosen on the selection split before it is judged

    def search(self, rung: Rung, ctx: LadderContext, env: SearchEnv) -> tuple[Rung, dict[str, Any]]:
        """(``rung`` with what the search chose in its params, the search's record for the result's details);
        run once before the rung is scored (``searches`` rungs only)."""
        raise NotImplementedError


@dataclass
class RungEntry:
    """A registered rung kind: its ``baselines:`` key, its settings (the config reads them from here, so they must
    import nothing heavy) and its implementation, a :class:`RungKind` or the ``"module:Class"`` path imported on
    first use."""

    key: str
    settings: Any  # the field's type: a settings class, `X | None`, or bool
    default: Callable[[], Any]  # the field's default when the config omits it
    description: str
    implementation: RungKind | str
    shorthand: Callable[[Any], Any] = lambda value: value  # a short form expanded before validation

    def enabled(self, settings: Any) -> bool:
        return bool(settings) and getattr(settings, "enabled", True)

    def load(self) -> RungKind:
        if isinstance(self.implementation, str):
            import importlib

            module, _, attr = self.implementation.partition(":")
            self.implementation = getattr(importlib.import_module(module), attr)()
        self.implementation.key = self.key
        return self.implementation


RUNGS: dict[str, RungEntry] = {}
_listeners: list[Callable[[], None]] = []  # told when the registry changes (the config rebuilds `baselines:`)


def register_rung(
    key: str,
    *,
    settings: Any,
    default: Callable[[], Any],
    description: str,
    implementation: RungKind | str,
    shorthand: Callable[[Any], Any] | None = None,
) -> RungEntry:
    """Add a rung kind under ``key`` (a ``baselines:`` key at once; measured in registration order); refuses a
    key registered twice. ``implementation``: a :class:`RungKind`, or ``"module:Class"`` imported on first use."""
    if key in RUNGS:
        raise ValueError(f"rung '{key}' registered twice")
    entry = RungEntry(key, settings, default, description, implementation, shorthand or (lambda value: value))
    RUNGS[key] = entry
    for notify in _listeners:
        notify()
    return entry


def unregister_rung(key: str) -> None:
    """Remove a rung kind (tests that register one of their own)."""
    if RUNGS.pop(key, None) is not None:
        for notify in _listeners:
            notify()


def on_change(listener: Callable[[], None]) -> None:
    _listeners.append(listener)


def get_rung(key: str) -> RungKind:
    """The implementation of a registered rung kind (imported now if registered by path)."""
    try:
        entry = RUNGS[key]
    except KeyError:
        raise KeyError(f"unknown rung kind '{key}'; registered: {', '.join(RUNGS)}") from None
    return entry.load()


def enabled_or_k(v: Any) -> Any:
    """`few_shot: 4` and `few_shot: false` are accepted as shorthands."""
    if isinstance(v, bool):
        return {"enabled": v}
    if isinstance(v, int):
        return {"enabled": True, "k": v}
    return v


def retrievers_shorthand(v: Any) -> Any:
    """`retriever: bm25` (one) is accepted beside `retrievers: [bm25, dense]`."""
    if isinstance(v, dict) and "retriever" in v:
        v = dict(v)
        one = v.pop("retriever")
        v.setdefault("retrievers", [one] if isinstance(one, str) else one)
    return v
