"""pandera DataFrameModels for the three kinds of training/eval records."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

# a value that is a number or a JSON object/list, not a text: what a nested or numeric field becomes when it is
# read as the text column (JSONL/Parquet values are kept as their JSON)
NOT_TEXT = r"(?s)^\s*(-?\d+(\.\d+)?([eE][-+]?\d+)?|\{.*\}|\[.*\])\s*$"
NOT_TEXT_ERROR = (
    "text holds a number or a JSON object/list, not a text (a nested or numeric field read as the text column): "
    "point data.text_column at the field that holds the text"
)


class _TextChecks:
    @staticmethod
    def not_blank(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col(data.key).str.strip_chars().str.len_chars() > 0)

    @staticmethod
    def is_text(data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(~pl.col(data.key).str.contains(NOT_TEXT))


class ClassificationRecord(pa.DataFrameModel):
    """A text and its label. The allowed label set is added per run by :func:`schema_for`."""

    text: str = pa.Field(nullable=False)
    label: str = pa.Field(nullable=False)

    @pa.check("text", name="not_blank", error="text must not be empty or whitespace")
    def text_not_blank(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _TextChecks.not_blank(data)

    @pa.check("text", name="is_text", error=NOT_TEXT_ERROR)
    def text_is_text(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _TextChecks.is_text(data)

    class Config:
        """pandera settings: coerce types, keep extra columns out of the check."""

        strict = False  # extra columns are allowed and ignored
        coerce = True


class GenerationRecord(pa.DataFrameModel):
    """An input (prompt) and its reference output (target)."""

    input: str = pa.Field(nullable=False)
    target: str = pa.Field(nullable=False)

    @pa.check("input", name="not_blank", error="input must not be empty or whitespace")
    def input_not_blank(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _TextChecks.not_blank(data)

    @pa.check("target", name="not_blank", error="target must not be empty or whitespace")
    def target_not_blank(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _TextChecks.not_blank(data)

    class Config:
        """pandera settings: coerce types, keep extra columns out of the check."""

        strict = False
        coerce = True


class RegressionRecord(pa.DataFrameModel):
    """A text and the number to predict for it (read as text, checked to parse as a finite number)."""

    text: str = pa.Field(nullable=False)
    label: str = pa.Field(nullable=False)

    @pa.check("text", name="not_blank", error="text must not be empty or whitespace")
    def text_not_blank(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _TextChecks.not_blank(data)

    @pa.check("text", name="is_text", error=NOT_TEXT_ERROR)
    def text_is_text(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _TextChecks.is_text(data)

    @pa.check("label", name="numeric", error="the target must be a number (e.g. 3 or 4.5)")
    def label_numeric(cls, data: pa.PolarsData) -> pl.LazyFrame:
        num = pl.col(data.key).str.strip_chars().cast(pl.Float64, strict=False)
        return data.lazyframe.select(num.is_not_null() & num.is_finite())

    class Config:
        """pandera settings: coerce types, keep extra columns out of the check."""

        strict = False
        coerce = True


def schema_for(answers: str, labels: list[str] | None = None) -> pa.DataFrameSchema:
    """The run's schema for a task's answer kind (labels, number, text): the record model plus, for labels, the
    declared label set."""
    if answers == "labels":
        schema = ClassificationRecord.to_schema()
        if labels is not None:
            label_col = schema.columns["label"]
            schema = schema.update_column("label", checks=[*label_col.checks, pa.Check.isin(labels)])
        return schema
    if answers == "number":
        return RegressionRecord.to_schema()
    return GenerationRecord.to_schema()
