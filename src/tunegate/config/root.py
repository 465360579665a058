"""The whole run's config: every section, the method union and the cross-field checks."""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SerializeAsAny, field_validator, model_validator

from tunegate import metrics
from tunegate.config.baselines import AnyBaselines, BaselinesConfig, baselines_class, default_baselines
from tunegate.config.budget import BudgetConfig
from tunegate.config.costs import CostsConfig
from tunegate.config.data import DataConfig
from tunegate.config.forecast import ForecastConfig
from tunegate.config.gate import GateConfig
from tunegate.config.guards import AnyGuards, GuardsConfig, default_guards, guards_class
from tunegate.config.hardware import HardwareConfig
from tunegate.config.orchestration import OrchestrationConfig
from tunegate.config.output import OutputConfig
from tunegate.config.prompt import PromptConfig
from tunegate.config.registry import RegistryConfig
from tunegate.config.serve import ServeConfig
from tunegate.config.tracking import AnyTracking, TrackingConfig, default_tracking, tracking_class
from tunegate.formats import is_conversation
from tunegate.ladder import RUNGS, LadderContext
from tunegate.methods import DEFAULT_METHOD, METHODS, MethodSettings, applicable_methods, inherited, settings_class
from tunegate.methods.base import applies, task_types_of
from tunegate.packaged_models import BUILTIN, DEFAULT_MODEL
from tunegate.problems import TASK_TYPES, TaskType, task_type
from tunegate.strict import Strict as _Strict


def section_class(cls: type) -> type:
    """The class that validates a section: ``baselines:``'s and ``tracking:``'s are built from their registries
    (the rungs and the tracking backends registered now)."""
    return {BaselinesConfig: baselines_class, TrackingConfig: tracking_class, GuardsConfig: guards_class}.get(
        cls, lambda: cls
    )()


def _method_settings(v: Any) -> Any:
    """A ``method:`` (or ``compare:`` item) value validated by the settings class registered under its name."""
    if isinstance(v, str):
        v = {"name": v}
    if isinstance(v, dict):
        v = {"name": DEFAULT_METHOD, **v}
        try:
            cls = settings_class(str(v["name"]))
        except KeyError:
            raise ValueError(f"unknown method '{v['name']}'. Use one of: {', '.join([*METHODS, 'auto'])}") from None
        return cls.model_validate(v)
    return v


# a method section: validated by the settings class registered under its `name`, dumped with all its keys
AnyMethod = SerializeAsAny[Annotated[MethodSettings, BeforeValidator(_method_settings)]]


def labelled(methods: list[Any]) -> list[Any]:
    """``methods`` with each unlabelled entry of a method listed more than once named by the settings that differ
    between those entries (lora[layers=top:4]): a sweep needs no labels."""
    out = list(methods)
    for name in {m.name for m in methods}:
        group = [i for i, m in enumerate(methods) if m.name == name]
        if len(group) < 2:
            continue
        dumps = [methods[i].model_dump(mode="json", exclude={"label"}) for i in group]
        differ = [k for k in dumps[0] if len({json.dumps(d.get(k), sort_keys=True) for d in dumps}) > 1]
        for i, d in zip(group, dumps):
            if methods[i].label is None and differ:
                words = ",".join(f"{k}={d[k]}" for k in differ).replace(" ", "")
                out[i] = methods[i].model_copy(update={"label": f"{name}[{words}]"})
    return out


@dataclass(frozen=True)
class GateSpec:
    """What judging reads from the config: the task, the gate metric, the declared gate, the prices, and the batch
    size the latencies were measured at. The gate, its tables and its pages take this, not the whole config."""

    task: str
    metric: str
    gate: GateConfig
    costs: CostsConfig
    batch_size: int


class TunegateConfig(_Strict):
    """The whole run: data + model + baselines + method + gate + registry + output."""

    task: str = Field(
        description="What the model does with an input (a registered task type): "
        + "; ".join(f"{name}: {t.description}" for name, t in TASK_TYPES.items())
        + "."
    )
    data: DataConfig = Field(description="Where the data is and how to read and check it.")
    model: str = Field(
        default=DEFAULT_MODEL,
        description=(
            "A built-in model ("
            + ", ".join(f"'{n}': {b.model_id}" for n, b in BUILTIN.items())
            + "), a local .gguf file (converted once, cached by content hash), a local Hugging Face folder, "
            "or a hub id (only when online)."
        ),
    )
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="How inputs become chat prompts.")
    baselines: AnyBaselines = Field(default_factory=default_baselines, description="The no-tuning rungs to beat.")
    method: AnyMethod = Field(
        default_factory=lambda: settings_class(DEFAULT_METHOD)(),
        description=f"Tuning method and its settings (`method: {DEFAULT_METHOD}` works too); `name` is one of the "
        "registered methods or `auto` (the advisor chooses).",
    )
    gate: GateConfig = Field(default_factory=GateConfig, description="The promotion rule, fixed before the run.")
    guards: AnyGuards = Field(
        default_factory=default_guards,
        description="What tuning may break, checked beside the gate (each on by default; `false` turns one off, "
        "`guards: false` all): retention, slices, bias, injection, overfitting.",
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Training budget caps.")
    hardware: HardwareConfig = Field(
        default_factory=HardwareConfig, description="Device and precision (auto-detected by default)."
    )
    costs: CostsConfig = Field(
        default_factory=CostsConfig, description="Prices of training and inference, expected volume."
    )
    compare: list[AnyMethod] | None = Field(
        default=None,
        description=(
            "`tunegate compare`: the methods to measure side by side, each like `method` (e.g. [lora, qlora, {name: "
            "prompt_tuning, epochs: 3}]). Default: every method that applies: `method` as configured, QLoRA/LoRA "
            "with the same settings as its sibling, the others with their defaults and `method`'s max_length, seed, "
            "epochs, steps and batching."
        ),
    )
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="Where versions are registered.")
    serve: ServeConfig = Field(
        default_factory=ServeConfig,
        description="`tunegate serve` of the versions this config registers: the request log and the live "
        "regression that rolls production back.",
    )
    output: OutputConfig = Field(default_factory=OutputConfig, description="Where run folders go.")
    forecast: ForecastConfig = Field(
        default_factory=ForecastConfig, description="`tunegate forecast`: the learning curve's fractions."
    )
    tracking: AnyTracking = Field(
        default_factory=default_tracking,
        description="Tracking backends the run's stages and training steps also go to (each off unless set).",
    )
    orchestration: OrchestrationConfig = Field(
        default_factory=OrchestrationConfig,
        description="Where the run's tasks execute: one after another in the flow's process (default), on Dask "
        "workers, and training as its own deployment on another work pool.",
    )
    config_dir: Path = Field(default=Path("."), exclude=True, description="Set by the loader; not a YAML key.")

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        if v not in TASK_TYPES:
            close = difflib.get_close_matches(v, list(TASK_TYPES), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(TASK_TYPES)}"
            raise ValueError(f"'{v}' is not a task type; {hint}")
        return v

    @property
    def task_type(self) -> TaskType:
        """The task type's capabilities (how answers are produced, its columns, its label set, ...)."""
        return task_type(self.task)

    @model_validator(mode="after")
    def _cross_field(self) -> "TunegateConfig":
        if self.data.dev is None and self.data.dev_fraction is None:
            for where, m in [("method", self.method), *(("compare", c) for c in self.compare or [])]:
                if getattr(m, "early_stopping", None) is not None:
                    raise ValueError(
                        f"{where} '{m.name}' has early_stopping, which evaluates on a selection split: set data.dev "
                        "(a file of labelled rows) or data.dev_fraction (e.g. 0.15 of train), or remove "
                        "early_stopping"
                    )
        if self.data.dev is not None and self.data.dev_fraction is not None:
            raise ValueError("data.dev and data.dev_fraction: give one selection split, a file or a share of train")
        if is_conversation(self.data.format) and not self.task_type.conversations:
            readers = [name for name, t in TASK_TYPES.items() if t.conversations]
            raise ValueError(
                f"data.format: '{self.data.format}' files hold conversations, answered by generation; set task: "
                + " or ".join(readers)
            )
        if not self.task_type.has_labels and self.data.labels is not None:
            with_labels = [name for name, t in TASK_TYPES.items() if t.has_labels]
            raise ValueError(
                f"data.labels: a {self.task} task has no label set; remove data.labels or use task: "
                + " or ".join(with_labels)
            )
        b = self.baselines
        if not any(kind.enabled(getattr(b, key)) for key, kind in RUNGS.items()):
            raise ValueError(
                "baselines: at least one baseline is needed to judge tuning; set zero_shot: true or few_shot.enabled: "
                "true"
            )
        for where, m in [("method", self.method), *((f"compare[{i}]", c) for i, c in enumerate(self.compare or []))]:
            if not applies(type(m), self.task):
                fits = list(applicable_methods(self.task))
                raise ValueError(
                    f"{where}: '{m.name}' does not apply to {self.task} tasks (it applies to "
                    f"{', '.join(task_types_of(type(m)))}); use one of {fits}"
                )
            if where != "method" and m.name == "auto":
                raise ValueError(f"{where}: 'auto' picks one method; list the methods to compare by name")
        keys = [m.key for m in labelled(list(self.compare or []))]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(
                f"compare: '{twice[0]}' is listed twice with the same settings; remove one, or give each a label"
            )
        metric = self.gate.metric
        allowed = metrics.gate_metrics(self.task)
        if metric is not None and metric not in allowed:
            raise ValueError(f"gate.metric: '{metric}' does not apply to {self.task}; use one of {list(allowed)}")
        return self

    @property
    def gate_metric(self) -> str:
        if self.gate.metric:
            return self.gate.metric
        return metrics.default_metric(self.task)

    @property
    def gate_spec(self) -> GateSpec:
        """What the gate, its tables and its pages read (:class:`GateSpec`)."""
        return GateSpec(
            task=self.task,
            metric=self.gate_metric,
            gate=self.gate,
            costs=self.costs,
            batch_size=self.baselines.batch_size,
        )

    def compare_methods(self) -> list[Any]:
        """The method configs `tunegate compare` runs: ``compare`` if given, else every method that applies
        (the configured ``method`` as set, the others with their defaults and its max_length and seed)."""
        if self.compare is not None:
            return labelled(list(self.compare))
        return [
            self.method if self.method.name == name else cls(**inherited(self.method, cls))
            for name, cls in applicable_methods(self.task).items()
        ]

    def inapplicable_methods(self) -> list[str]:
        """The registered methods that do not apply to this config's task."""
        return [name for name, entry in METHODS.items() if not entry.applies_to(self.task)]

    def with_method(self, method: Any) -> "TunegateConfig":
        """A copy of this config with another method config (validated settings, or their dumped form, e.g. the
        plan's chosen method)."""
        if isinstance(method, dict):
            method = settings_class(method["name"])(**method)
        return self.model_copy(update={"method": method})

    def seed_configs(self) -> list["TunegateConfig"]:
        """One config per ``gate.seeds``: method.seed, method.seed + 1, ..."""
        seed = self.method.seed
        return [self.with_method(self.method.model_copy(update={"seed": seed + i})) for i in range(self.gate.seeds)]

    def with_resolved(self, resolved: dict[str, dict[str, Any]] | None) -> "TunegateConfig":
        """This config with the settings validation resolved from the files (``ValidationResult.resolved``: labels
        found in train, a conversation format recognised, what a ``max_length: auto`` becomes), so later stages,
        the registry and serving see them. Method settings fill only what is still 'auto' (in ``method`` and in
        each ``compare`` entry); unchanged for none."""
        if not resolved:
            return self
        update: dict[str, Any] = {}
        if resolved.get("data"):
            update["data"] = self.data.model_copy(update=dict(resolved["data"]))
        if resolved.get("method"):

            def fill(m):
                return m.model_copy(update={k: v for k, v in resolved["method"].items() if getattr(m, k, 0) == "auto"})

            update["method"] = fill(self.method)
            if self.compare is not None:
                update["compare"] = [fill(m) for m in self.compare]
        return self.model_copy(update=update)

    def ladder_context(self) -> LadderContext:
        """What the ladder's rungs need to know about this run besides their own settings."""
        return LadderContext(
            task=self.task,
            label_answers=self.data.label_answers(),
            conversational=is_conversation(self.data.format),
            split_seed=self.data.split_seed,
            config_dir=self.config_dir,
            retrieval=self.baselines.retrieval,
            metric=self.gate_metric,
            selection=self.data.dev is not None or bool(self.data.dev_fraction),
        )

    def resolve(self, path: Path) -> Path:
        """A data path as given in the YAML, made absolute against the config file's folder."""
        return path if path.is_absolute() else (self.config_dir / path).resolve()

    def config_hash(self) -> str:
        """What the run computes from: where its tasks execute (``orchestration``) changes no result, so a run is
        resumed, and a retrain skipped, whichever task runner it uses."""
        dumped = self.model_dump(mode="json", exclude={"orchestration"})
        return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()
