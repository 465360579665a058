"""Conversation files (OpenAI messages, ShareGPT, Alpaca): read into one shape; every bad line named."""

import json

from tunegate.conversations import from_json, read_jsonl, split_last, to_json


def _write(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def test_the_three_formats_read_into_the_same_turns(tmp_path):
    openai = {
        "messages": [
            {"role": "system", "content": "You are a support agent."},
            {"role": "user", "content": "My card is lost."},
            {"role": "assistant", "content": "I blocked it.", "weight": 0},
            {"role": "user", "content": "Thanks, and a new one?"},
            {"role": "assistant", "content": "On its way."},
        ]
    }
    sharegpt = {
        "conversations": [
            {"from": "system", "value": "You are a support agent."},
            {"from": "human", "value": "My card is lost."},
            {"from": "gpt", "value": "I blocked it."},
            {"from": "human", "value": "Thanks, and a new one?"},
            {"from": "gpt", "value": "On its way."},
        ]
    }
    alpaca = {"instruction": "Summarize.", "input": "A long text.", "output": "Short."}
    a = read_jsonl(_write(tmp_path / "a.jsonl", [openai]))
    b = read_jsonl(_write(tmp_path / "b.jsonl", [sharegpt]))
    c = read_jsonl(_write(tmp_path / "c.jsonl", [alpaca]))
    assert (a.format, b.format, c.format) == ("messages", "sharegpt", "alpaca")
    ta, tb = a.conversations[1], b.conversations[1]
    assert [(t.role, t.content) for t in ta] == [(t.role, t.content) for t in tb]
    assert [t.weight for t in ta] == [0, 0, 0, 0, 1]  # OpenAI's weight: 0 honoured; user/system never trained
    assert [t.weight for t in tb] == [0, 0, 1, 0, 1]
    prompt, reference = split_last(ta)
    assert reference == "On its way." and prompt[-1].content == "Thanks, and a new one?"
    assert from_json(to_json(ta)) == ta
    (tc,) = c.conversations.values()
    assert [(t.role, t.content) for t in tc] == [("user", "Summarize.\n\nA long text."), ("assistant", "Short.")]


def test_every_bad_line_is_named_with_its_check(tmp_path):
    ok = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    bad = [
        ok,  # 1
        "{not json",  # 2
        "[1, 2]",  # 3
        {"prompt": "hi", "completion": "x"},  # 4: no messages
        {"messages": [{"role": "bot", "content": "hi"}]},  # 5
        {"messages": [{"role": "user", "content": ["hi"]}, {"role": "assistant", "content": "x"}]},  # 6
        {"messages": [{"role": "user", "content": "hi"}]},  # 7: no assistant turn
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]},  # 8
        {"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "and?"}]},  # 9
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x", "weight": 2}]},  # 10
        "",  # 11: blank, skipped
        {"messages": "hello"},  # 12
    ]
    res = read_jsonl(_write(tmp_path / "bad.jsonl", bad), fmt="messages")
    assert list(res.conversations) == [1]
    found = {p.line: p.check for p in res.problems}
    assert found == {
        2: "not_json",
        3: "not_an_object",
        4: "missing_messages",
        5: "unknown_role",
        6: "content_not_string",
        7: "no_assistant_turn",
        8: "empty_assistant_turn",
        9: "last_turn_not_assistant",
        10: "bad_weight",
        12: "missing_messages",
    }
    by_line = {p.line: p.message for p in res.problems}
    assert "'bot'" in by_line[5] and "system, user, assistant" in by_line[5]
    assert "turn 1 (user): content is a list" in by_line[6]
