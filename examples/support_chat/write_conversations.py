"""Writes train.jsonl / eval.jsonl: multi-turn customer-support conversations in OpenAI's fine-tuning format.

Written for tunegate's chat example (no public data is copied): a shop's support agent, eight
intents, several phrasings each, order numbers and names drawn at random, 2-3 exchanges per
conversation. The agent follows a house style (greets by name, repeats the order number, gives
the policy in one sentence, ends with a next step), so a tuned model can learn what a prompted
one only approximates. Some first agent turns carry `"weight": 0` (OpenAI's way to keep a turn
as context without training on it). Re-run to regenerate; the seed makes it deterministic.

    python examples/support_chat/write_conversations.py
"""

import json
import random
from pathlib import Path

SYSTEM = "You are Ada, the support agent of Northwind Shop. Be brief and friendly; always give the next step."
NAMES = ["Maria", "Tom", "Aisha", "Chen", "Lucas", "Priya", "Jonas", "Fatima", "Diego", "Emma", "Kenji", "Sara"]
ITEMS = ["headphones", "a desk lamp", "running shoes", "a coffee grinder", "a backpack", "a phone case"]
INTENTS = {
    "late_delivery": (
        ["My order {order} still hasn't arrived.", "Where is my package? Order {order}.", "Order {order} is late."],
        "Sorry for the wait, {name}. Order {order} left our warehouse and should arrive within 2 business days. "
        "I've sent you the tracking link by email.",
    ),
    "refund": (
        [
            "I want a refund for order {order}.",
            "Can I get my money back for {item}? Order {order}.",
            "Please refund order {order}.",
        ],
        "Of course, {name}. Refunds for order {order} go back to your card within 5 business days. "
        "Please send the item back with the prepaid label from your email.",
    ),
    "wrong_item": (
        ["I received the wrong item in order {order}.", "Order {order}: you sent me something else, not {item}."],
        "I'm sorry about that, {name}. We'll ship the right item for order {order} today at no cost. "
        "Keep the wrong one or donate it.",
    ),
    "cancel": (
        ["Please cancel order {order}.", "I changed my mind, cancel {order} please.", "Cancel my order {order}."],
        "Done, {name}: order {order} is cancelled and you won't be charged. "
        "You'll get a confirmation email in a few minutes.",
    ),
    "change_address": (
        ["I need to change the delivery address for order {order}.", "Can you ship order {order} to my office?"],
        "Sure, {name}. Reply with the new address and I'll update order {order} before it ships. "
        "Changes are possible until the order leaves our warehouse.",
    ),
    "damaged": (
        ["My {item} arrived broken. Order {order}.", "Order {order} came damaged."],
        "I'm sorry, {name}. Please send a photo of the damage and we'll replace order {order} right away. "
        "No need to return the broken item.",
    ),
    "password": (
        ["I can't log in to my account.", "I forgot my password.", "My password reset email never came."],
        "No problem, {name}. I've sent a new reset link to your email; it works for 30 minutes. "
        "Check your spam folder if you don't see it.",
    ),
    "invoice": (
        ["I need an invoice for order {order}.", "Can you send me the invoice of {order}? It's for my company."],
        "Sure, {name}. The invoice for order {order} is on its way to your email as a PDF. "
        "You can also download it from My orders.",
    ),
}
GREETINGS = ["Hi", "Hello", "Hey there", "Good morning", "Hi Ada"]
FIRST_REPLY = "Hi! I'm Ada from Northwind Shop. May I have your name, please?"


def conversation(rng: random.Random) -> dict:
    intent = rng.choice(sorted(INTENTS))
    asks, answer = INTENTS[intent]
    name, order, item = rng.choice(NAMES), f"NW-{rng.randint(10000, 99999)}", rng.choice(ITEMS)
    ask = rng.choice(asks).format(order=order, item=item)
    msgs = [{"role": "system", "content": SYSTEM}]
    if rng.random() < 0.6:  # the agent asks the customer's name first
        first = {"role": "assistant", "content": FIRST_REPLY}
        if rng.random() < 0.5:
            first["weight"] = 0  # context only
        msgs += [{"role": "user", "content": f"{rng.choice(GREETINGS)}. {ask}"}, first]
        msgs += [{"role": "user", "content": f"I'm {name}."}]
    else:
        msgs += [{"role": "user", "content": f"{rng.choice(GREETINGS)}, this is {name}. {ask}"}]
    msgs.append({"role": "assistant", "content": answer.format(name=name, order=order, item=item)})
    return {"messages": msgs}


def main() -> None:
    here = Path(__file__).resolve().parent
    rng = random.Random(7)
    for split, n in (("train", 240), ("eval", 80)):
        rows = [conversation(rng) for _ in range(n)]
        (here / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
