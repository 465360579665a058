"""Data file formats are plugins: one module per format, registered by name with the suffixes it claims.

``base`` holds :class:`DataFormat` (``scan`` a file into a lazy frame, ``explain`` a malformed one line by line,
``check_header``) and the registry (:data:`FORMATS`, :func:`register_format`, :func:`format_of`); ``delimited``
(csv, tsv), ``jsonl``, ``parquet``, ``lines`` and ``chat`` (messages, sharegpt, alpaca) register the built-in
ones. ``data.format`` is validated against the registry, and ``tunegate.data`` reads every file through it.
Importing this package imports nothing heavy (polars loads when a file is read).
"""

# isort: off
# each registers its formats, in the order data.format's documentation lists them
from tunegate.formats import delimited, jsonl, parquet, lines, chat  # noqa: F401

# isort: on
from tunegate.formats.base import (
    FORMATS,
    DataFormat,
    format_of,
    is_conversation,
    register_format,
    unknown_format,
    unregister_format,
)

__all__ = [
    "FORMATS",
    "DataFormat",
    "format_of",
    "is_conversation",
    "register_format",
    "unknown_format",
    "unregister_format",
]
