"""Data contracts: one pandera DataFrameModel per record type, validated on polars frames.

Columns are canonical here (``text``/``label`` or ``input``/``target``); the loader
renames the user's columns first and maps names back in the report.
"""

from tunegate.schemas.contracts import ClassificationRecord, GenerationRecord, schema_for

__all__ = ["ClassificationRecord", "GenerationRecord", "schema_for"]
