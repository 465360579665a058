"""The OpenAI-compatible part of ``tunegate serve``: ``GET /v1/models``, ``POST /v1/completions`` and
``POST /v1/chat/completions``, with ``model``, ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop``,
``usage`` and ``stream`` (server-sent events, ``stream_options.include_usage``), as the ``openai`` client sends
and reads them. Other fields a client may send (``user``, ``presence_penalty``, ...) are accepted and ignored;
``n`` other than 1, ``echo``, ``logprobs`` and tool calls are refused with a message.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tunegate.inference import complete, conversation_input
from tunegate.serving.live import Traffic
from tunegate.serving.pool import ApiError, ModelPool, Slot

log = logging.getLogger(__name__)

MAX_CHARS = 20_000
MAX_NEW_TOKENS = 512


class _Sampling(BaseModel):
    """What both completion endpoints share."""

    model_config = ConfigDict(extra="ignore")  # user, presence_penalty, ...: accepted, not used
    model: str | None = Field(default=None, description="a served model (GET /v1/models); none: the first --model")
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 (default): greedy, as judged")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int = Field(default=1, ge=1, le=1, description="one choice per request")
    logprobs: Any = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else list(v or [])
        if len(stops) > 4 or any(not s or len(s) > 200 for s in stops):
            raise ValueError("stop: at most 4 non-empty strings of at most 200 characters")
        return stops

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v):
        if v not in (None, False, 0):
            raise ValueError("logprobs are not returned by this server; leave logprobs unset")
        return v

    def tokens(self) -> int:
        return self.max_tokens or 64

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


class CompletionRequest(_Sampling):
    """Body of POST /v1/completions: a prompt (a string, or a list of one string)."""

    prompt: str | list[str]
    echo: bool = False

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, v):
        prompts = [v] if isinstance(v, str) else v
        if len(prompts) != 1 or not prompts[0] or len(prompts[0]) > MAX_CHARS:
            raise ValueError(f"prompt: one non-empty string of at most {MAX_CHARS} characters (one per request)")
        return prompts[0]

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v):
        if v:
            raise ValueError("echo is not supported; leave it false")
        return v


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, ...
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict[str, Any]] | None = None

    @model_validator(mode="after")
    def _text(self):
        if isinstance(self.content, list):  # content parts: only text
            if any(part.get("type") != "text" for part in self.content):
                raise ValueError("only text content parts are supported (type 'text')")
            self.content = "".join(str(part.get("text", "")) for part in self.content)
        self.content = self.content or ""
        if len(self.content) > MAX_CHARS:
            raise ValueError(f"a message's content is at most {MAX_CHARS} characters")
        if self.role == "developer":
            self.role = "system"
        return self


class ChatCompletionRequest(_Sampling):
    """Body of POST /v1/chat/completions: the conversation so far, ending with a user turn."""

    messages: list[ChatMessage] = Field(min_length=1, max_length=512)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_NEW_TOKENS)
    tools: Any = None

    @model_validator(mode="after")
    def _ends_with_user(self):
        if self.tools:
            raise ValueError("tools are not supported by this server")
        if self.messages[-1].role != "user" or not str(self.messages[-1].content).strip():
            raise ValueError("messages must end with a non-empty user turn (the one to answer)")
        return self

    def tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 64


def _can_generate(slot: Slot) -> Slot:
    if not slot.predictor.answerer.can_generate:
        raise ApiError(
            400,
            "wrong_endpoint",
            f"{slot.version_ref} is a {slot.predictor.meta.get('method')} model (a head over features): it cannot "
            "generate text; use POST /v1/predict",
            "model",
        )
    return slot


def _usage(r: dict[str, Any]) -> dict[str, int]:
    return {
        "prompt_tokens": r["prompt_tokens"],
        "completion_tokens": r["completion_tokens"],
        "total_tokens": r["prompt_tokens"] + r["completion_tokens"],
    }


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def _card(slot: Slot) -> dict[str, Any]:
    return {
        "id": slot.ref,
        "object": "model",
        "created": int(slot.loaded_at),
        "owned_by": "tunegate",
        **{k: v for k, v in slot.describe().items() if k in ("model", "method", "task", "base_model", "labels")},
    }


class _Call:
    """One generation request on its way: the slot asked, the slot that answers (a canary's for its share), the
    route, the shadow, and its id (the response's and the log's: feedback names it)."""

    def __init__(self, pool: ModelPool, traffic: Traffic, requested: Slot, prefix: str, endpoint: str):
        self.pool, self.traffic, self.requested, self.endpoint = pool, traffic, requested, endpoint
        self.slot, self.route = traffic.route(requested)
        _can_generate(self.slot)
        self.shadow = traffic.shadow_of(requested, self.route)
        self.rid, self.created = f"{prefix}-{uuid.uuid4().hex[:24]}", int(time.time())
        self.t0 = time.perf_counter()

    def head(self, kind: str) -> dict[str, Any]:
        return {"id": self.rid, "object": kind, "created": self.created, "model": self.requested.ref}

    def record(self, prompt: str, r: dict[str, Any], kwargs: dict[str, Any]) -> None:
        """Log the answer; with a shadow, once the shadow's own generation (queued now, never returned) is done."""
        ms = round(1000 * (time.perf_counter() - self.t0), 1)

        def write(future=None) -> None:
            extra = None
            if future is not None:
                try:
                    late = round(1000 * (time.perf_counter() - t1), 1)
                    extra = self.traffic.shadow_record(self.shadow, {"output": future.result()["text"]}, late)
                except Exception as exc:  # noqa: BLE001 - a failing shadow never touches the answer
                    log.warning("shadow %s failed: %s", self.shadow.ref, exc)
            self.traffic.record(
                rid=self.rid, requested=self.requested, answered=self.slot, route=self.route, endpoint=self.endpoint,
                text=prompt, result={"output": r["text"]}, latency_ms=ms, shadow=extra,
            )  # fmt: skip

        if self.shadow is None:
            write()
            return
        t1 = time.perf_counter()
        self.pool.inference.submit(complete, self.shadow.predictor, prompt, **kwargs).add_done_callback(write)


def _respond(call: _Call, prompt: str, req: _Sampling, chunk) -> Any:
    """The generation for one request: (result, ms) to shape into a body, or a stream of server-sent chunks
    (``chunk(text, finish_reason, first)`` makes one; None: no chunk)."""
    pool, slot = call.pool, call.slot
    slot.requests += 1
    kwargs = dict(max_tokens=req.tokens(), temperature=req.temperature, top_p=req.top_p, seed=req.seed, stop=req.stop)
    if not req.stream:
        r = pool.inference.call(complete, slot.predictor, prompt, **kwargs)
        call.record(prompt, r, kwargs)
        return r, round(1000 * (time.perf_counter() - call.t0), 1)
    pieces: queue.SimpleQueue = queue.SimpleQueue()
    gone = threading.Event()
    fut = pool.inference.submit(complete, slot.predictor, prompt, on_text=pieces.put, cancelled=gone.is_set, **kwargs)
    fut.add_done_callback(lambda _f: pieces.put(None))

    def events():
        try:
            if (opening := chunk(None, None, True)) is not None:
                yield _sse(opening)  # chat: the assistant role comes first
            while (piece := pieces.get()) is not None:
                yield _sse(chunk(piece, None, False))
            try:
                r = fut.result()
            except Exception as exc:  # noqa: BLE001 - the stream has started: the error is its last event
                yield _sse({"error": {"message": f"generation failed ({type(exc).__name__})", "type": "server_error"}})
                yield "data: [DONE]\n\n"
                return
            call.record(prompt, r, kwargs)
            yield _sse(chunk(None, r["finish_reason"], False))
            if req.include_usage():
                yield _sse({**chunk(None, None, False), "choices": [], "usage": _usage(r)})
            yield "data: [DONE]\n\n"
        finally:
            gone.set()  # a client that went away stops the generation at its next token

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def add_routes(app: FastAPI, pool: ModelPool, traffic: Traffic) -> None:
    """GET /v1/models[/{model}], POST /v1/completions, POST /v1/chat/completions."""

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [_card(s) for s in pool.slots.values()]}

    @app.get("/v1/models/{model:path}")
    def model(model: str) -> dict[str, Any]:
        return _card(pool.find(model))

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> Any:
        call = _Call(pool, traffic, pool.find(req.model), "cmpl", "completions")

        def chunk(text, finish, first):
            if first:
                return None
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            return {**call.head("text_completion"), "choices": [choice]}

        out = _respond(call, req.prompt, req, chunk)
        if isinstance(out, StreamingResponse):
            return out
        r, ms = out
        body = chunk(r["text"], r["finish_reason"], False)
        return {**body, "version": call.slot.version_ref, "usage": _usage(r), "latency_ms": ms}

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatCompletionRequest) -> Any:
        call = _Call(pool, traffic, pool.find(req.model), "chatcmpl", "chat")
        prompt = conversation_input(call.slot.predictor, [m.model_dump() for m in req.messages])

        def chunk(text, finish, first):
            delta = {"role": "assistant", "content": ""} if first else ({"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**call.head("chat.completion.chunk"), "choices": [choice]}

        out = _respond(call, prompt, req, chunk)
        if isinstance(out, StreamingResponse):
            return out
        r, ms = out
        message = {"role": "assistant", "content": r["text"]}
        return {
            **call.head("chat.completion"),
            "version": call.slot.version_ref,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": r["finish_reason"]}],
            "usage": _usage(r),
            "latency_ms": ms,
        }
