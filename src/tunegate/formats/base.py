"""What a data file format is, and the registry of them.

A format is a :class:`DataFormat` instance registered by name (:func:`register_format`) with the file suffixes
it claims; ``data.format: <name>`` picks it, ``auto`` picks it by suffix. It reads a file into a lazy frame
(``scan``), says why a malformed file cannot be read, line by line (``explain``), and may check a header before
the rows are read (``check_header``). A conversation format (``conversation=True``) holds chat turns, read by
``tunegate.conversations``. Nothing heavy is imported here: the config validates ``data.format`` against this
registry, and polars is imported when a file is read.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

from tunegate.errors import DataReadError

if TYPE_CHECKING:
    import polars as pl

MAX_NAMED_LINES = 5  # a malformed file's error names up to this many of its bad lines


class DataFormat:
    """A data file format. Subclasses set the class attributes and implement :meth:`scan`."""

    name: str = ""
    suffixes: tuple[str, ...] = ()  # the extensions `format: auto` reads as this format, lower case with the dot
    description: str = ""  # for data.format's documentation: what a file looks like, how it is read
    text: bool = True  # a text file: checked for binary content, byte-order marks and encodings before reading
    conversation: bool = False  # chat turns (task: generation), read by tunegate.conversations

    def scan(self, path: Path, columns: list[str] | None, encoding: str) -> pl.LazyFrame:
        """The file's rows, lazily where it can (polars' scanning). ``columns``: names for a file without a header
        row. A frame that has a ``_row`` column numbers its rows itself; otherwise rows are numbered 1, 2, ..."""
        raise NotImplementedError(f"format '{self.name}' reads no table (a conversation format?)")

    def explain(self, path: Path) -> str | None:
        """Why a malformed file of this format cannot be read, naming its bad lines; None when it cannot tell."""
        return None

    def check_header(self, path: Path, head: bytes) -> None:
        """Raise DataReadError for a header that cannot be right (``head``: the file's first 64 KiB)."""


FORMATS: dict[str, DataFormat] = {}


def register_format(fmt: DataFormat) -> DataFormat:
    """Make ``fmt`` a choice of ``data.format`` (and, by its suffixes, of ``auto``)."""
    if not fmt.name:
        raise ValueError("a data format needs a name")
    FORMATS[fmt.name] = fmt
    return fmt


def unregister_format(name: str) -> None:
    FORMATS.pop(name, None)


def unknown_format(name: str) -> str:
    """The message for a ``data.format`` that names no registered format."""
    close = difflib.get_close_matches(name, list(FORMATS), n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"use auto or one of {', '.join(FORMATS)}"
    return f"unknown data.format '{name}'; {hint}"


def is_conversation(name: str) -> bool:
    """Does ``data.format: name`` hold conversations?"""
    return name in FORMATS and FORMATS[name].conversation


def format_of(path: Path, fmt: str) -> DataFormat:
    """The format that reads ``path``: the one named, or for ``auto`` the one claiming its suffix."""
    if fmt != "auto":
        if fmt not in FORMATS:
            raise DataReadError(f"{path}: {unknown_format(fmt)}")
        return FORMATS[fmt]
    ext = path.suffix.lower()
    claimed = next((f for f in FORMATS.values() if ext in f.suffixes), None)
    if claimed is None:
        known = [f.suffixes[0] for f in FORMATS.values() if f.suffixes]
        use = ", ".join(known[:-1]) + f" or {known[-1]}" if len(known) > 1 else "".join(known)
        raise DataReadError(
            f"{path}: unknown file extension '{ext or '(none)'}'. Use {use}, or set data.format explicitly"
        )
    return claimed


def first_lines(lines: list[int]) -> str:
    """Line numbers for a message: the first few, and that there are more."""
    more = f" (and more; the first {MAX_NAMED_LINES} shown)" if len(lines) > MAX_NAMED_LINES else ""
    return ", ".join(str(n) for n in lines[:MAX_NAMED_LINES]) + more


def is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def decode(path: Path, encoding: str) -> str:
    """A whole text file in ``encoding``; a DataReadError naming the first line that is not."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except LookupError:
        raise DataReadError(f"{path}: unknown data.encoding '{encoding}' (e.g. utf-8, latin-1, cp1252)") from None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataReadError(
            f"{path}: line {line} is not valid {encoding} (byte {data[exc.start]:#04x}); set data.encoding to the "
            "file's encoding (e.g. latin-1 or cp1252) or re-save it as UTF-8"
        ) from None
