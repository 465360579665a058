"""Loading a config: YAML read safely (duplicate keys and alias bombs refused), ``--set`` overrides, and every
validation problem collected into one :class:`ConfigError` whose lines name the field, the bad value and the fix."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunegate.config.root import TunegateConfig, section_class
from tunegate.errors import ConfigError
from tunegate.methods import DEFAULT_METHOD, METHODS, inherited, settings_class


def _allowed_keys(loc: tuple, method_cls: type[BaseModel] | None) -> list[str]:
    """Field names allowed at ``loc`` (for 'did you mean' hints on unknown keys)."""
    current: Any = TunegateConfig
    for part in loc:
        if isinstance(part, int):  # a list index (compare[0])
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        if current is TunegateConfig and part in ("method", "compare"):
            current = method_cls or settings_class(DEFAULT_METHOD)
            continue
        ann = field.annotation
        candidates = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        current = candidates[0] if candidates else None
        current = section_class(current)  # baselines: its rung keys come from the ladder's registry
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [k for k in current.model_fields if k != "config_dir"]
    return []


def _method_cls_at(raw: dict[str, Any], loc: tuple) -> type[BaseModel] | None:
    """The settings class of the method section an error is in (method.r, compare.0.r), from the raw YAML."""
    value: Any = None
    if loc[:1] == ("method",):
        value = raw.get("method")
    elif loc[:1] == ("compare",) and len(loc) > 1 and isinstance(loc[1], int):
        items = raw.get("compare")
        value = items[loc[1]] if isinstance(items, list) and loc[1] < len(items) else None
    name = value if isinstance(value, str) else value.get("name", DEFAULT_METHOD) if isinstance(value, dict) else None
    try:
        return settings_class(str(name)) if name is not None else None
    except KeyError:
        return None


def _format_error(err: dict, raw: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    method_cls = _method_cls_at(raw, loc)
    field = ".".join(str(p) for p in loc) or "(top level)"
    value = err.get("input")
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        allowed = _allowed_keys(parent, method_cls)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys here: {', '.join(allowed)}"
        return f"{field}: unknown key. Remove it or fix the spelling ({hint})"
    if kind == "missing":
        return f"{field}: required but missing. Add it to the YAML"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # a cross-field check: its message names the fields itself
        return msg
    shown = json.dumps(value, default=str)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{field}: {msg} (got {shown}). Fix the value in the YAML"


def parse_config(raw: dict[str, Any], *, config_dir: Path = Path(".")) -> TunegateConfig:
    """Validate a mapping into a :class:`TunegateConfig`, raising one ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of keys (task, data, model, ...), got {type(raw).__name__}")
    odd = [k for k in raw if not isinstance(k, str)]
    if odd:  # YAML reads an unquoted yes/no/on/off/true/false as a boolean, digits as a number
        raise ConfigError(
            f"config: top-level keys must be names (task, data, model, ...); got {', '.join(repr(k) for k in odd)}: "
            "YAML reads unquoted yes/no/on/off as booleans and digits as numbers, so quote the key or fix its spelling"
        )
    try:
        return TunegateConfig(**raw, config_dir=config_dir)
    except ValidationError as exc:
        lines = [_format_error(e, raw) for e in exc.errors()]
        raise ConfigError("Invalid config:\n  - " + "\n  - ".join(lines)) from None


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: '{p}' is not a section")
    node[parts[-1]] = value


MAX_YAML_VALUES = 100_000  # a config has hundreds of values; aliases of aliases can expand to billions (a "bomb")


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, stricter: a key given twice in one mapping is an error (PyYAML keeps the last one
    silently, dropping a whole section), and a document whose aliases expand to more than MAX_YAML_VALUES values
    is refused before anything is built from it."""

    def compose_document(self):
        node = super().compose_document()
        sizes: dict[int, int] = {}

        def size(n) -> int:  # the expanded size, each shared (aliased) node counted once per use, memoized
            if id(n) not in sizes:
                sizes[id(n)] = 0  # a recursive alias counts as one
                kids = (
                    [x for pair in n.value for x in pair]
                    if isinstance(n, yaml.MappingNode)
                    else (n.value if isinstance(n, yaml.SequenceNode) else [])
                )
                sizes[id(n)] = min(1 + sum(size(k) for k in kids), 10 * MAX_YAML_VALUES)
            return sizes[id(n)]

        if node is not None and size(node) > MAX_YAML_VALUES:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"its aliases (*name) expand to more than {MAX_YAML_VALUES:,} values: refusing a possible alias "
                "bomb; write the values out",
                node.start_mark,
            )
        return node

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"key '{key}' appears twice (first at line {seen[key] + 1}); keep one of them",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, StrictLoader.construct_mapping)


def _switch_method(raw: dict[str, Any], name: Any) -> str | None:
    """``--set method.name=X`` where the file configures another method: the file's section is that method's
    settings (a LoRA rank means nothing to a probe), so the section becomes X's defaults plus what X takes over
    from the configured method (``inherited``: max_length, seed, the loop's budget), as ``tunegate compare`` does;
    the other ``method.*`` overrides still apply on top. Returns a note saying what was dropped, or None."""
    section = raw.get("method")
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, dict):
        return None
    old = str(section.get("name", DEFAULT_METHOD))
    if str(name) == old or str(name) not in [*METHODS, "auto"]:
        return None  # same method, or an unknown name: validation says what to do
    try:
        configured = settings_class(old).model_validate({**section, "name": old})
    except (KeyError, ValidationError):
        configured = None  # the file's own section is invalid: start from X's defaults
    kept = inherited(configured, settings_class(str(name))) if configured is not None else {}
    raw["method"] = {"name": name, **kept}
    dropped = sorted(set(section) - set(kept) - {"name"})
    if not dropped:
        return None
    return (
        f"method.name={name} replaces the config's {old} settings: dropped {', '.join(dropped)}"
        + (f"; kept {', '.join(sorted(kept))}" if kept else "")
        + f" ({name}'s defaults otherwise; set more with --set method.KEY=VALUE)"
    )


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None, notes: list[str] | None = None
) -> TunegateConfig:
    """Load a YAML config file; ``overrides`` maps dotted keys (``method.epochs``) to values. What an override
    changed beyond its own key (``method.name`` switching the method) is appended to ``notes``."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(
            f"Config {p} is a folder, not a YAML file. Pass the path of a YAML config, e.g. "
            "examples/quickstart/config.yaml"
        )
    if not p.is_file():
        raise ConfigError(
            f"Config file not found: {p}. Pass the path of a YAML config, e.g. examples/quickstart/config.yaml"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = p.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"Config file {p}: line {line} is not UTF-8; save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"Config file {p} cannot be read ({exc.strerror})") from None
    try:
        raw = yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {p} is not valid YAML: {str(exc)[:1000]}") from None
    except RecursionError:
        raise ConfigError(f"Config file {p} is nested too deeply to be a tunegate config") from None
    if raw is None:
        raise ConfigError(
            f"Config file {p} is empty (or only comments); start from examples/quickstart/config.yaml "
            "(docs/CONFIG.md lists every key)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"Config file {p} holds a YAML {type(raw).__name__}, not a mapping of keys (task:, model:, data:, ...); "
            "start from examples/quickstart/config.yaml"
        )
    overrides = dict(overrides or {})
    if "method.name" in overrides:  # first: the other method.* overrides apply to the switched section
        note = _switch_method(raw, overrides["method.name"])
        if note and notes is not None:
            notes.append(note)
    for key, value in overrides.items():
        _set_dotted(raw, key, value)
    return parse_config(raw, config_dir=p.resolve().parent)
