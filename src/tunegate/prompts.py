"""Turning an example into the model's prompt, the same way for every stage.

Baselines, training, evaluation of the tuned model, ``predict`` and ``serve`` all build
prompts here, so a difference in scores can only come from the model, never from the
prompt. Two formats (``prompt.format``):

- ``chat``: the tokenizer's chat template; a demonstration is a user/assistant turn
  pair, and the end of an answer is the end-of-turn (eos) token;
- ``plain``, for base models without a chat template::

      {system}

      {instruction}

      Input: {demonstration}
      Answer: {its answer}

      Input: {input}
      Answer:

  the answer follows "Answer:" after a space, and ends with a blank line (the
  demonstrations teach that; training targets and generation stop use the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tunegate.config import PromptConfig
from tunegate.problems import task_type


@dataclass(frozen=True)
class Context:
    """Retrieved passages put before the input (RAG), with the instruction to answer from them."""

    instruction: str
    passages: tuple[str, ...]


PLAIN_ANSWER = "Answer:"
PLAIN_END = "\n\n"
PLAIN_USER = "User:"
PLAIN_ASSISTANT = "Assistant:"


def prompt_format(prompt: PromptConfig, tokenizer) -> str:
    """'chat' or 'plain': ``prompt.format``, with 'auto' read from the tokenizer (chat template or not)."""
    if prompt.format != "auto":
        return prompt.format
    return "chat" if getattr(tokenizer, "chat_template", None) else "plain"


@dataclass
class PromptBuilder:
    """Renders prompts (chat template or plain format) and encodes training examples."""

    tokenizer: object
    prompt: PromptConfig
    task: str
    answers: list[str] = field(default_factory=list)  # classification answer words, in label order
    conversation: bool = False  # inputs are conversations (JSON turn lists, ``conversations.to_json``)

    def __post_init__(self) -> None:
        self.format = prompt_format(self.prompt, self.tokenizer)
        self._label_ids: list[list[int]] | None = None  # computed on first use
        self._bos: str | None = None
        if self.format == "chat" and not getattr(self.tokenizer, "chat_template", None):
            from tunegate.errors import ConfigError

            raise ConfigError(
                "prompt.format is 'chat' but this model's tokenizer has no chat template (a base model?). Set "
                "prompt.format: plain (or auto)."
            )

    def instruction(self) -> str:
        text = self.prompt.instruction
        if text is None:
            text = task_type(self.task).instruction(self.prompt.list_labels)
        return text.replace("{labels}", ", ".join(self.answers))

    def user_message(self, text: str, context: Context | None = None, *, instructed: bool = True) -> str:
        instr = self.instruction() if instructed else ""
        body = f"{self.prompt.input_prefix}{text}"
        parts = [instr, body] if instr else [body]
        if context is not None:
            passages = "\n".join(f"[{i}] {c}" for i, c in enumerate(context.passages, start=1))
            parts = [context.instruction, f"Context:\n{passages}", *parts]
        return "\n\n".join(parts)

    def messages(self, text: str, shots: list[tuple[str, str]] = (), context: Context | None = None) -> list[dict]:
        msgs = [{"role": "system", "content": self.prompt.system}] if self.prompt.system is not None else []
        # the instruction is stated once, in the first user turn (as lm-eval-harness's multi-turn few-shot and
        # the plain format do): demonstrations and the input after them are bare inputs. Repeated in every
        # demonstration, a long label list multiplies the prompt and scored worse (docs/BENCHMARKS.md).
        for k, (shot_text, shot_answer) in enumerate(shots):
            msgs.append({"role": "user", "content": self.user_message(shot_text, instructed=k == 0)})
            msgs.append({"role": "assistant", "content": shot_answer})
        msgs.append({"role": "user", "content": self.user_message(text, context, instructed=not shots)})
        return msgs

    def conversation_messages(
        self, text: str, shots: list[tuple[str, str]] = (), context: Context | None = None
    ) -> list[dict]:
        """A conversation input as chat messages: its system turn (else ``prompt.system``), demonstration
        conversations (their turns, then their reference answer), then its own turns. ``prompt.instruction``,
        when set, goes before the first user turn once; a RAG context before the last user turn."""
        from tunegate.conversations import from_json

        turns = from_json(text)
        system = next((t.content for t in turns if t.role == "system"), self.prompt.system)
        msgs = [{"role": "system", "content": system}] if system is not None else []
        body = []
        for demo, answer in shots:
            body += [{"role": t.role, "content": t.content} for t in from_json(demo) if t.role != "system"]
            body.append({"role": "assistant", "content": answer})
        body += [{"role": t.role, "content": t.content} for t in turns if t.role != "system"]
        users = [i for i, m in enumerate(body) if m["role"] == "user"]
        if users and context is not None:
            passages = "\n".join(f"[{i}] {c}" for i, c in enumerate(context.passages, start=1))
            last = body[users[-1]]
            last["content"] = f"{context.instruction}\n\nContext:\n{passages}\n\n{last['content']}"
        if users and self.prompt.instruction:
            first = body[users[0]]
            first["content"] = f"{self.prompt.instruction}\n\n{first['content']}"
        return msgs + body

    def render(self, text: str, shots: list[tuple[str, str]] = (), context: Context | None = None) -> str:
        """The prompt string ending where the answer starts."""
        if self.conversation:
            msgs = self.conversation_messages(text, shots, context)
            if self.format == "plain":
                return self._render_plain_turns(msgs)
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if self.format == "plain":
            return self._render_plain(text, shots, context)
        # transformers 5: tokenize=True returns a BatchEncoding; render text, then tokenize ourselves
        return self.tokenizer.apply_chat_template(
            self.messages(text, shots, context), tokenize=False, add_generation_prompt=True
        )

    def _render_plain(self, text: str, shots, context: Context | None) -> str:
        parts = [self.prompt.system] if self.prompt.system else []
        head = self._bos_text()
        if context is not None:
            passages = "\n".join(f"[{i}] {c}" for i, c in enumerate(context.passages, start=1))
            parts += [context.instruction, f"Context:\n{passages}"]
        if self.instruction():
            parts.append(self.instruction())
        parts += [f"{self.prompt.input_prefix}{t}\n{PLAIN_ANSWER} {a}" for t, a in shots]
        parts.append(f"{self.prompt.input_prefix}{text}\n{PLAIN_ANSWER}")
        return head + PLAIN_END.join(parts)

    def _render_plain_turns(self, msgs: list[dict]) -> str:
        """Plain format of a conversation: the system line, then 'User: ...' / 'Assistant: ...' turns (an exchange
        per block, blocks split by blank lines), ending with 'Assistant:'."""
        parts = [m["content"] for m in msgs if m["role"] == "system" and m["content"]]
        block: list[str] = []
        for m in msgs:
            if m["role"] == "user":
                if block:
                    parts.append("\n".join(block))
                block = [f"{PLAIN_USER} {m['content']}"]
            elif m["role"] == "assistant":
                block.append(f"{PLAIN_ASSISTANT} {m['content']}")
        block.append(PLAIN_ASSISTANT)
        parts.append("\n".join(block))
        return self._bos_text() + PLAIN_END.join(parts)

    def fit_conversation(self, text: str, budget: int) -> str:
        """A conversation cut to ``budget`` tokens (its rendered turns, demonstrations aside): the oldest user/assistant
        exchanges are dropped first (the system turn and the last exchange stay); then the last user turn is cut,
        keeping its end."""
        from tunegate.conversations import Turn, from_json, to_json

        turns = from_json(text)

        def size(ts) -> int:
            return len(self.encode(self.render(to_json(ts))))

        while size(turns) > budget:
            starts = [i for i, t in enumerate(turns) if t.role == "user"]
            if len(starts) < 2:
                break
            system = [t for t in turns if t.role == "system"]
            turns = system + [t for t in turns[starts[1] :] if t.role != "system"]
        over = size(turns) - budget
        if over > 0:
            last = max(i for i, t in enumerate(turns) if t.role == "user")
            ids = self.encode(turns[last].content)
            cut = self.tokenizer.decode(ids[min(len(ids) - 1, over) :])
            turns = turns[:last] + [Turn("user", cut, 0)] + turns[last + 1 :]
        return to_json(turns)

    def _bos_text(self) -> str:
        """The BOS token's text when the tokenizer starts every text with it (Gemma degrades without it); plain
        prompts are encoded without special tokens, so it is written into the prompt. Probed once per builder."""
        if self._bos is None:
            bos = self.tokenizer.bos_token_id
            starts = bos is not None and self.tokenizer("a", add_special_tokens=True).input_ids[:1] == [bos]
            self._bos = self.tokenizer.bos_token if starts else ""
        return self._bos

    def answer_text(self, answer: str) -> str:
        """The answer as it follows the prompt (plain: after "Answer:" / "Assistant:" and a space)."""
        return f" {answer}" if self.format == "plain" else answer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids

    def end_of_turn_ids(self) -> list[int]:
        """What ends an answer: the end-of-turn (eos) token in chat; the blank line in the plain format."""
        if self.format == "plain":
            return self.encode(PLAIN_END)
        eos = self.tokenizer.eos_token_id
        return [eos] if eos is not None else []

    def stop_ids(self) -> list[int]:
        """Tokens that stop generation: eos, and in the plain format the blank line (when it is one token)."""
        ids = [self.tokenizer.eos_token_id] if self.tokenizer.eos_token_id is not None else []
        end = self.end_of_turn_ids()
        return ids + [t for t in end if len(end) == 1 and t not in ids]

    def label_answer_ids(self) -> list[list[int]]:
        """Classification: the tokens each answer word is scored with, in label order.

        The answer's own tokens; the end-of-turn token is added only when one answer is a
        token-prefix of another (otherwise the shorter one would always win or lose).
        """
        if self._label_ids is None:  # asked for every training row: encoded once
            ids = [self.encode(self.answer_text(a)) for a in self.answers]
            n = range(len(ids))
            clash = any(i != j and ids[j][: len(ids[i])] == ids[i] for i in n for j in n)
            self._label_ids = [x + self.end_of_turn_ids() for x in ids] if clash else ids
        return [list(x) for x in self._label_ids]

    def answer_ids(self, answer: str) -> list[int]:
        """The tokens a model is trained to produce for ``answer``.

        Classification: exactly the tokens the scorer reads (:meth:`label_answer_ids`), so
        training puts all of its signal where the decision is made. Other tasks: the
        answer followed by the end-of-turn token (generation must learn to stop).
        """
        if task_type(self.task).scored and answer in self.answers:
            return self.label_answer_ids()[self.answers.index(answer)]
        return self.encode(self.answer_text(answer)) + self.end_of_turn_ids()

    def overhead_tokens(self) -> int:
        """Tokens a prompt costs besides the input text itself (a conversation's budget covers its whole rendering)."""
        if self.conversation:
            return 0
        return len(self.encode(self.render("")))

    def fit_text(self, text: str, budget: int) -> str:
        """Cut ``text`` so that it takes at most ``budget`` tokens (keeps the beginning; a conversation: see
        :meth:`fit_conversation`)."""
        if self.conversation:
            return self.fit_conversation(text, budget)
        ids = self.encode(text)
        if len(ids) <= budget:
            return text
        return self.tokenizer.decode(ids[: max(budget, 1)])

    def training_example(self, text: str, answer: str, max_length: int) -> tuple[list[int], list[int]]:
        """(prompt_ids, answer_ids) fitting in ``max_length``; the input text is truncated if needed."""
        answer_ids = self.answer_ids(answer)
        budget = max_length - self.overhead_tokens() - len(answer_ids)
        prompt_ids = self.encode(self.render(self.fit_text(text, budget)))
        return prompt_ids, answer_ids
