"""The ``data:`` section: where the data is and how to read and check it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from tunegate.formats import FORMATS, unknown_format
from tunegate.strict import Strict as _Strict


class DataConfig(_Strict):
    """Where the data is and how to read it. Relative paths are relative to the config file."""

    train: Path = Field(
        description="Training data: a file (.csv, .tsv, .jsonl, .parquet), a Hugging Face dataset saved with "
        "save_to_disk (one split's folder), or a folder of Parquet files."
    )
    eval: Path | None = Field(
        default=None, description="Held-out eval file. If absent, eval_fraction of train is split off."
    )
    format: str = Field(
        default="auto",
        description="File format (a registered data format, `tunegate.formats`); 'auto' picks it by the file "
        "extension ("
        + ", ".join(f"{', '.join(f.suffixes)}: {name}" for name, f in FORMATS.items() if f.suffixes)
        + "). "
        + "; ".join(f"'{name}': {f.description}" for name, f in FORMATS.items() if not f.conversation)
        + ". Conversations (task: generation, JSONL): "
        + "; ".join(f"'{name}': {f.description}" for name, f in FORMATS.items() if f.conversation)
        + "; 'auto' recognises them from a .jsonl file's first record. The model answers the last assistant turn, "
        "judged against it.",
    )
    train_on: Literal["last", "all"] = Field(
        default="last",
        description="Conversations: which assistant turns carry the training loss: the last one, or all of them "
        "(each with the turns before it as its prompt; a turn with weight 0 never).",
    )
    columns: list[str] | None = Field(
        default=None,
        description="Column names for a CSV/TSV file without a header row, in file order (e.g. [label, text] for SMS "
        "Spam); its first line is then read as data. 'lines' files: the names of its two columns.",
    )
    slice_columns: list[str] = Field(
        default_factory=list,
        description="Eval-file columns to slice the gate metric by (e.g. [channel, language]): the slices guard "
        "compares the candidate with the best rung on each value's rows (guards.slices).",
    )
    encoding: str = Field(
        default="utf-8",
        description="Text encoding of CSV/TSV/lines files (e.g. latin-1 for TREC's train file). A file that does not "
        "decode is an error naming the line.",
    )
    label_pattern: str | None = Field(
        default=None,
        description="Classification: a regular expression applied to the label column whose first group is the "
        "label, e.g. '^([A-Z]+):' turns TREC's 'HUM:ind' into the coarse label 'HUM'. A label that does not match "
        "is an error naming the row.",
    )
    text_column: str = Field(default="text", description="Classification and regression: column with the input text.")
    label_column: str = Field(
        default="label", description="Classification: column with the label; regression: with the number."
    )
    input_column: str = Field(default="input", description="Generation: column with the prompt/input.")
    target_column: str = Field(default="target", description="Generation: column with the reference output.")
    labels: list[str] | dict[str, str] | None = Field(
        default=None,
        description=(
            "Classification: the allowed labels. A list (the label is also the answer word), or a mapping "
            "label -> answer word (e.g. {0: negative, 1: positive}). Absent: the labels found in train, each "
            "answered by its own name with underscores read as spaces (card_lost -> 'card lost'); the report "
            "lists them with their counts, and an eval label not seen in train is an error."
        ),
    )
    eval_fraction: float = Field(default=0.2, gt=0.0, lt=1.0, description="Share of train held out when no eval file.")
    dev: Path | None = Field(
        default=None,
        description="Selection split: rows for choices that must not be made on the rows that judge them (a "
        "threshold, a checkpoint, a prompt). A file or folder read like train; see dev_fraction.",
    )
    dev_fraction: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Without data.dev: hold out this share of the (sampled) train rows as the selection split "
        "(stratified by label). Dev rows are never trained on and never judged.",
    )
    split_seed: int = Field(default=0, description="Seed of the train/eval split and of row sampling.")
    max_train_rows: int | None = Field(
        default=None,
        gt=0,
        description="Use a random sample of this many train rows. Classification: stratified by label (every label "
        "kept, with at least min_examples_per_label rows where it has them; proportions kept otherwise).",
    )
    max_eval_rows: int | None = Field(
        default=None,
        gt=0,
        description="Use a random sample of this many eval rows (classification: stratified by label, every label "
        "kept).",
    )
    min_examples_per_label: int = Field(default=2, ge=1, description="Fewer train rows for a label is an error.")
    duplicates: Literal["error", "warn", "drop"] = Field(
        default="error",
        description="Exact duplicate rows within train: fail, warn, or drop the repeats. Classification: also a "
        "text that appears with different labels: fail, warn, or drop every row of it.",
    )
    leakage: Literal["error", "warn", "drop"] = Field(
        default="error", description="Eval rows whose text also occurs in train: fail, warn, or drop them from eval."
    )
    too_long: Literal["error", "truncate"] = Field(
        default="truncate",
        description="Rows whose prompt+answer exceed method.max_length tokens: fail, or truncate the input text.",
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v != "auto" and v not in FORMATS:
            raise ValueError(unknown_format(v))
        return v

    @field_validator("label_pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        if v is None:
            return v
        import re

        try:
            compiled = re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError("needs a group, the label: e.g. '^([A-Z]+):'")
        unsupported = re.search(r"\(\?<?[=!]|\(\?P=|\\[1-9]|\\g<", v)
        if unsupported:  # Python's re accepts them; the files are read by polars, whose Rust regex does not
            raise ValueError(
                f"{unsupported.group()!r}: lookahead, lookbehind and backreferences are not supported (the data is "
                "read by polars, whose regex engine has none); match the label with a plain group instead"
            )
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_to_str(cls, v: Any) -> Any:
        items = [*v.keys(), *v.values()] if isinstance(v, dict) else v if isinstance(v, list) else []
        if any(isinstance(x, bool) for x in items):
            raise ValueError(
                "YAML reads unquoted yes, no, on, off, true and false as booleans, so these labels are not the words "
                "in your file: quote them, e.g. labels: ['yes', 'no']"
            )
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        if isinstance(v, list):
            return [str(x) for x in v]
        return v

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, v: Any) -> Any:
        if v is None:
            return v
        answers = list(v.values()) if isinstance(v, dict) else list(v)
        if len(answers) < 2:
            raise ValueError("need at least two labels")
        if len(set(answers)) != len(answers):
            raise ValueError("labels (or their answer words) must be distinct")
        if any(not a.strip() for a in answers):
            raise ValueError("an empty label/answer word cannot be scored")
        return v

    def label_answers(self) -> dict[str, str]:
        """Label -> answer text the model is asked to produce."""
        if self.labels is None:
            return {}
        if isinstance(self.labels, dict):
            return dict(self.labels)
        return {label: label for label in self.labels}
