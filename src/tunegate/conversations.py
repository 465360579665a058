"""Conversation data: the OpenAI fine-tuning format, ShareGPT and Alpaca, read into one shape and checked.

Every format becomes a list of :class:`Turn` (role ``system`` / ``user`` / ``assistant``,
content, and a loss weight: OpenAI's per-message ``weight: 0|1``, default 1 on assistant
turns). The checks follow OpenAI's data-preparation guide, each failing line named:

- a line that is not JSON, or not a JSON object;
- no ``messages`` list (ShareGPT: ``conversations``; Alpaca: ``instruction`` and ``output``);
- a turn that is not an object, an unknown role, content that is not a string;
- no assistant turn, an empty assistant turn, a conversation that does not end with one
  (the last assistant turn is the reference the model is judged against);
- a ``weight`` other than 0 or 1.

Lines are 1-based line numbers of the file (blank lines count, and are skipped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass(frozen=True)
class Turn:
    role: str
    content: str
    weight: int = 1  # assistant turns: 1 = trained on (OpenAI's `weight`); other roles are never trained on


@dataclass
class Problem:
    """One check that failed on one line."""

    check: str
    line: int
    message: str


@dataclass
class ReadResult:
    """The conversations of a file, keyed by line, and what was wrong with the others."""

    conversations: dict[int, list[Turn]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    format: str = "messages"


def detect_format(record: dict) -> str | None:
    """The format a JSON object is in, from its keys."""
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    return None


def read_jsonl(path: Path, fmt: str = "auto", encoding: str = "utf-8") -> ReadResult:
    """Every line of a JSONL file as a conversation, or a :class:`Problem` naming the line."""
    out = ReadResult()
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid {encoding} at byte {exc.start}; set data.encoding") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            out.problems.append(Problem("not_json", n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        if not isinstance(record, dict):
            out.problems.append(Problem("not_an_object", n, f"a JSON {type(record).__name__}, not an object"))
            continue
        kind = fmt if fmt != "auto" else detect_format(record) or out.format
        if fmt == "auto" and not out.conversations and detect_format(record):
            out.format = kind
        turns, problem = parse(record, kind, n)
        if problem is not None:
            out.problems.append(problem)
        else:
            out.conversations[n] = turns
    return out


def parse(record: dict, fmt: str, line: int) -> tuple[list[Turn], Problem | None]:
    """One record in ``fmt`` as turns, checked."""
    if fmt == "alpaca":
        return _alpaca(record, line)
    key, role_key, content_key = (
        ("messages", "role", "content") if fmt == "messages" else ("conversations", "from", "value")
    )
    msgs = record.get(key)
    if msgs is None:
        return [], Problem(f"missing_{key}", line, f"no '{key}' list (keys: {', '.join(map(str, record)) or 'none'})")
    if not isinstance(msgs, list) or not msgs:
        return [], Problem(f"missing_{key}", line, f"'{key}' is not a non-empty list")
    turns = []
    for i, m in enumerate(msgs, start=1):
        if not isinstance(m, dict):
            return [], Problem("bad_turn", line, f"turn {i} is a {type(m).__name__}, not an object")
        raw_role = m.get(role_key)
        role = raw_role if fmt == "messages" else SHAREGPT_ROLES.get(str(raw_role).lower())
        if role not in ROLES:
            allowed = ", ".join(ROLES if fmt == "messages" else SHAREGPT_ROLES)
            return [], Problem("unknown_role", line, f"turn {i} has {role_key} {raw_role!r}; use one of {allowed}")
        content = m.get(content_key)
        if not isinstance(content, str):
            kind = "missing" if content is None else f"a {type(content).__name__}"
            return [], Problem("content_not_string", line, f"turn {i} ({role}): {content_key} is {kind}, not a string")
        weight = m.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            return [], Problem("bad_weight", line, f"turn {i} ({role}): weight {weight!r}; use 0 or 1")
        turns.append(Turn(role, content, int(weight) if role == "assistant" else 0))
    return _check_turns(turns, line)


def _alpaca(record: dict, line: int) -> tuple[list[Turn], Problem | None]:
    for key in ("instruction", "output"):
        if key not in record:
            return [], Problem(f"missing_{key}", line, f"no '{key}' (an Alpaca record has instruction, input, output)")
    for key in ("instruction", "input", "output", "system"):
        if key in record and record[key] is not None and not isinstance(record[key], str):
            return [], Problem("content_not_string", line, f"'{key}' is a {type(record[key]).__name__}, not a string")
    user = record["instruction"] if not record.get("input") else f"{record['instruction']}\n\n{record['input']}"
    turns = [Turn("system", record["system"], 0)] if record.get("system") else []
    turns += [Turn("user", user, 0), Turn("assistant", record["output"] or "", 1)]
    return _check_turns(turns, line)


def _check_turns(turns: list[Turn], line: int) -> tuple[list[Turn], Problem | None]:
    if not any(t.role == "assistant" for t in turns):
        return [], Problem("no_assistant_turn", line, "no assistant turn (nothing to learn or to judge)")
    for i, t in enumerate(turns, start=1):
        if t.role == "assistant" and not t.content.strip():
            return [], Problem("empty_assistant_turn", line, f"turn {i} (assistant) is empty")
    if turns[-1].role != "assistant":
        return [], Problem(
            "last_turn_not_assistant",
            line,
            f"the last turn is {turns[-1].role}; a conversation ends with the assistant turn it is judged on",
        )
    return turns, None


def to_json(turns: list[Turn]) -> str:
    return json.dumps([{"role": t.role, "content": t.content, "weight": t.weight} for t in turns], ensure_ascii=False)


def from_json(text: str) -> list[Turn]:
    return [Turn(m["role"], m["content"], int(m.get("weight", 0))) for m in json.loads(text)]


def split_last(turns: list[Turn]) -> tuple[list[Turn], str]:
    """(the turns before the final assistant turn, that turn's content): the prompt and its reference."""
    return turns[:-1], turns[-1].content


def conversation_targets(train, train_on: str) -> list[tuple[str, str]]:
    """(prompt turns as JSON, assistant answer) for the trained turns of each conversation: the last one (``last``)
    or every assistant turn (``all``), never one whose weight is 0. ``train``: a frame with a ``conversation``
    column. A conversation with K trained turns gives K examples; each turn's loss sees exactly the turns before
    it, as in one sequence with causal attention."""
    out = []
    for full in train.get_column("conversation").to_list():
        turns = from_json(full)
        last = len(turns) - 1
        for i, t in enumerate(turns):
            if t.role == "assistant" and t.weight and (train_on == "all" or i == last):
                out.append((to_json(turns[:i]), t.content))
    return out
