"""Conversations rendered as prompts: chat template or plain turns, demonstrations, older turns cut first."""

from tunegate.config import PromptConfig
from tunegate.conversations import Turn, from_json, to_json
from tunegate.prompts import PromptBuilder

CONV = [
    Turn("system", "You are a bank's support agent.", 0),
    Turn("user", "My card is lost.", 0),
    Turn("assistant", "I blocked it.", 1),
    Turn("user", "Can I get a new one?", 0),
]
DEMO = [Turn("user", "What is my balance?", 0)]


def test_chat_template_rendering_keeps_the_conversation_system_turn_and_puts_demos_first(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(), "generation", conversation=True)
    msgs = b.conversation_messages(to_json(CONV), shots=[(to_json(DEMO), "It is 12 EUR.")])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == "You are a bank's support agent."  # the conversation's own, not prompt.system
    text = b.render(to_json(CONV))
    assert text.endswith(
        tiny_tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
        ).split("x", 1)[1]
    )
    assert "I blocked it." in text and "Can I get a new one?" in text


def test_plain_rendering_of_turns(tiny_tokenizer):
    b = PromptBuilder(
        tiny_tokenizer, PromptConfig(format="plain", instruction="Be brief."), "generation", conversation=True
    )
    text = b.render(to_json(CONV))
    assert text.endswith(
        "You are a bank's support agent.\n\nUser: Be brief.\n\nMy card is lost.\nAssistant: I blocked it.\n\n"
        "User: Can I get a new one?\nAssistant:"
    )


def test_a_long_conversation_loses_its_oldest_exchanges_first(tiny_tokenizer):
    b = PromptBuilder(tiny_tokenizer, PromptConfig(format="plain", system=None), "generation", conversation=True)
    long = [Turn("system", "sys", 0)]
    for i in range(6):
        long += [Turn("user", f"question number {i} " * 3, 0), Turn("assistant", f"answer {i}", 1)]
    long.append(Turn("user", "the last question", 0))
    full = len(b.encode(b.render(to_json(long))))
    cut = from_json(b.fit_text(to_json(long), full - 20))
    assert cut[0] == long[0] and cut[-1] == long[-1]  # system and the last turn stay
    assert len(cut) < len(long) and cut[1].content.startswith("question number")
    assert len(b.encode(b.render(to_json(cut)))) <= full - 20
    assert int(cut[1].content.split()[2]) > 0  # the oldest exchange went first
