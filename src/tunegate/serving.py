"""``tunegate serve``: a registered model over HTTP (FastAPI + uvicorn, loopback by default).

* ``GET /health``: the version being served and what it is.
* ``POST /v1/predict``: classification (label + per-label probabilities) or regression
  (the number); ``{"text": ...}`` or ``{"texts": [...]}``.
* ``POST /v1/completions``: generation, OpenAI-style (``prompt``, ``max_tokens``).
* ``POST /admin/reload``: resolve the reference again (``name@production``) and switch to
  the version it points at now. A watcher thread does the same when the registry's
  aliases change (``--watch-seconds``).

The base model is read from disk once (``modeling.keep_base_models_in_memory``); a reload
loads the new version's adapter onto a copy of it in the background while the current
version keeps answering, then swaps one reference: requests in flight finish on the
version they started with, none is dropped. Inference runs on one thread, first come first
served; predict requests that arrive while it is busy are batched together. Errors are JSON: 4xx for bad
requests, a 500 says "internal error" without a traceback (the server log has it).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunegate.errors import TunegateError
from tunegate.inference import Predictor, complete, conversation_input, load_predictor, predict
from tunegate.modeling import keep_base_models_in_memory
from tunegate.problems import task_type
from tunegate.registry import Registry

log = logging.getLogger(__name__)

MAX_TEXTS = 64
MAX_CHARS = 20_000


class ApiError(Exception):
    """An HTTP error answered as JSON: status, machine-readable code, message."""

    def __init__(self, status: int, kind: str, message: str):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


class PredictRequest(BaseModel):
    """Body of POST /v1/predict: one text or a list of texts."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, min_length=1, max_length=MAX_CHARS, description="one input")
    texts: list[str] | None = Field(default=None, min_length=1, max_length=MAX_TEXTS, description="several inputs")

    @model_validator(mode="after")
    def _one_of(self):
        if (self.text is None) == (self.texts is None):
            raise ValueError('give exactly one of "text" (a string) or "texts" (a list of strings)')
        for t in self.texts or []:
            if not t.strip() or len(t) > MAX_CHARS:
                raise ValueError(f"every entry of texts must be a non-empty string of at most {MAX_CHARS} characters")
        return self


class CompletionRequest(BaseModel):
    """Body of POST /v1/completions (OpenAI-style): a prompt and a token cap."""

    model_config = ConfigDict(
        extra="ignore"
    )  # OpenAI clients send model, temperature, ...; greedy decoding ignores them
    prompt: str = Field(min_length=1, max_length=MAX_CHARS)
    max_tokens: int = Field(default=64, ge=1, le=512)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool fields, ...
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CHARS)


class ChatCompletionRequest(BaseModel):
    """Body of POST /v1/chat/completions (OpenAI-style): the conversation so far, ending with a user turn."""

    model_config = ConfigDict(extra="ignore")  # model, temperature, ...: greedy decoding ignores them
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_TEXTS * 8)
    max_tokens: int = Field(default=64, ge=1, le=512)

    @model_validator(mode="after")
    def _ends_with_user(self):
        if self.messages[-1].role != "user" or not self.messages[-1].content.strip():
            raise ValueError("messages must end with a non-empty user turn (the one to answer)")
        return self


class InferenceQueue:
    """One inference thread, first come first served, with dynamic batching of /v1/predict.

    Torch gets both cores for one forward pass at a time (a plain Lock is not fair: under
    load some requests waited 17x the median). Predict requests that queue up while a
    batch runs are scored together in the next one (same version, up to ``max_texts``
    inputs): on 2 cores one 8-text forward costs about 2.5 single ones.
    """

    def __init__(self, max_texts: int = 32):
        self.max_texts = max_texts
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        threading.Thread(target=self._loop, daemon=True, name="inference").start()

    def call(self, fn, *args, **kwargs):
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(("call", (fn, args, kwargs), fut))
        return fut.result()

    def predict(self, predictor: Predictor, texts: list[str]) -> list[dict[str, Any]]:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put(("predict", (predictor, texts), fut))
        return fut.result()

    def _loop(self) -> None:
        carry = None
        while True:
            job = carry or self.jobs.get()
            carry = None
            kind, payload, fut = job
            if kind == "call":
                fn, args, kwargs = payload
                self._run(fut, fn, *args, **kwargs)
                continue
            predictor = payload[0]
            batch = [job]
            n = len(payload[1])
            while n < self.max_texts:
                try:
                    nxt = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt[0] == "predict" and nxt[1][0] is predictor and n + len(nxt[1][1]) <= self.max_texts:
                    batch.append(nxt)
                    n += len(nxt[1][1])
                else:
                    carry = nxt
                    break
            texts = [t for _, (_, ts), _ in batch for t in ts]
            try:
                results = predict(predictor, texts)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error
                for _, _, f in batch:
                    f.set_exception(exc)
                continue
            self.batches += 1
            i = 0
            for _, (_, ts), f in batch:
                f.set_result(results[i : i + len(ts)])
                i += len(ts)

    @staticmethod
    def _run(fut, fn, *args, **kwargs) -> None:
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the request's thread
            fut.set_exception(exc)


class ModelSlot:
    """The version being served, swapped whole on reload."""

    def __init__(self, registry_root: Path, ref: str):
        self.registry_root = Path(registry_root)
        self.ref = ref if "@" in ref else f"{ref}@production"
        self.predictor: Predictor = load_predictor(self.registry_root, self.ref)
        self.loaded_at = time.time()
        self.inference = InferenceQueue()
        self.reload_lock = threading.Lock()  # one reload at a time
        self.requests = 0
        self.reloads = 0
        self.last_reload_error: str | None = None

    def infer(self, fn, *args, **kwargs):
        return self.inference.call(fn, *args, **kwargs)

    @property
    def version_ref(self) -> str:
        v = self.predictor.version
        return f"{v.name}@v{v.version}"

    def target_version(self) -> int:
        return Registry(self.registry_root).resolve(self.ref).version

    def reload(self, *, force: bool = False) -> dict[str, Any]:
        """Switch to what ``ref`` points at now; the current version keeps serving until the new one is ready."""
        with self.reload_lock:
            before = self.version_ref
            try:
                if not force and self.target_version() == self.predictor.version.version:
                    return {"reloaded": False, "model": before, "message": f"{self.ref} still points at {before}"}
                fresh = load_predictor(self.registry_root, self.ref)
            except TunegateError as exc:
                self.last_reload_error = str(exc)
                raise ApiError(409, "reload_failed", f"{exc}; still serving {before}") from None
            self.predictor = fresh  # one reference swap: requests in flight keep the object they started with
            self.loaded_at = time.time()
            self.reloads += 1
            self.last_reload_error = None
            log.info("reloaded %s: %s -> %s", self.ref, before, self.version_ref)
            return {
                "reloaded": True,
                "from": before,
                "model": self.version_ref,
                "message": f"{before} -> {self.version_ref}",
            }


def _watch(slot: ModelSlot, every: float, stop: threading.Event) -> None:
    """Reload when the alias points elsewhere (checked every ``every`` seconds)."""
    while not stop.wait(every):
        try:
            if slot.target_version() != slot.predictor.version.version:
                slot.reload()
        except Exception as exc:  # noqa: BLE001 - keep watching; the current version keeps serving
            log.warning("alias watch: %s", exc)


def _error(status: int, kind: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": {"type": kind, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return JSONResponse(status_code=status, content=body)


def create_app(registry_root: str | Path, ref: str, *, watch_seconds: float = 0.0) -> FastAPI:
    """The serving app for one registered version (``ref``: NAME@alias or NAME@version): errors in one JSON
    shape, the prediction and completion endpoints, and a reload that follows alias moves."""
    keep_base_models_in_memory()
    slot = ModelSlot(Path(registry_root), ref)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        if watch_seconds > 0:
            threading.Thread(target=_watch, args=(slot, watch_seconds, stop), daemon=True, name="alias-watch").start()
        yield
        stop.set()

    app = FastAPI(
        title="tunegate serve", version="1", description=f"Serving {slot.ref} from {registry_root}", lifespan=lifespan
    )
    app.state.slot = slot
    _add_error_handlers(app)
    _add_predict_routes(app, slot)
    _add_completion_routes(app, slot)

    @app.post("/admin/reload")
    def admin_reload(force: bool = False) -> dict[str, Any]:
        return slot.reload(force=force)

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as one JSON shape: {"error": {"type", "message", ...}}, never a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.kind, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        details = [
            {"where": ".".join(str(x) for x in e.get("loc", ())), "problem": e.get("msg", "")} for e in exc.errors()
        ]
        msg = "; ".join(f"{d['where']}: {d['problem']}" for d in details) or "invalid request"
        return _error(422, "invalid_request", msg, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        hint = (
            " (endpoints: GET /health, POST /v1/predict, POST /v1/completions, POST /admin/reload)"
            if exc.status_code == 404
            else ""
        )
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "http_error", f"{exc.detail}{hint}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return _error(500, "internal_error", f"internal error ({type(exc).__name__}); the server log has the details")


def _add_predict_routes(app: FastAPI, slot: ModelSlot) -> None:
    """GET /health and POST /v1/predict (labels or numbers)."""

    @app.get("/health")
    def health() -> dict[str, Any]:
        p = slot.predictor
        return {
            "status": "ok",
            "model": slot.version_ref,
            "ref": slot.ref,
            "method": p.meta.get("method"),
            "task": p.meta.get("task"),
            "labels": list((p.meta.get("labels") or {}).keys()),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(slot.loaded_at)),
            "requests": slot.requests,
            "predict_batches": slot.inference.batches,
            "reloads": slot.reloads,
            "last_reload_error": slot.last_reload_error,
        }

    @app.post("/v1/predict")
    def v1_predict(req: PredictRequest) -> dict[str, Any]:
        p = slot.predictor
        if task_type(p.meta["task"]).generates:
            raise ApiError(400, "wrong_endpoint", f"{slot.version_ref} is a generation model; use POST /v1/completions")
        texts = [req.text] if req.text is not None else list(req.texts or [])
        t0 = time.perf_counter()
        results = slot.inference.predict(p, texts)
        slot.requests += 1
        out = [{k: v for k, v in r.items() if k != "input"} for r in results]
        return {
            "model": f"{p.version.name}@v{p.version.version}",
            "predictions": out,
            "latency_ms": round(1000 * (time.perf_counter() - t0), 1),
        }


def _add_completion_routes(app: FastAPI, slot: ModelSlot) -> None:
    """POST /v1/completions and POST /v1/chat/completions (text; a model that cannot generate is refused)."""

    def generate_for(prompt_of, max_tokens: int) -> tuple[dict[str, Any], Predictor, float, dict[str, Any]]:
        """The completion endpoints' shared path: refuse a model that cannot generate, run, and the usage block."""
        p = slot.predictor
        if not p.answerer.can_generate:
            raise ApiError(
                400,
                "wrong_endpoint",
                f"{slot.version_ref} is a {p.meta.get('method')} model (a head over "
                "features): it cannot generate text; use POST /v1/predict",
            )
        t0 = time.perf_counter()
        r = slot.infer(complete, p, prompt_of(p), max_tokens=max_tokens)
        slot.requests += 1
        usage = {
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "total_tokens": r["prompt_tokens"] + r["completion_tokens"],
        }
        return r, p, t0, usage

    def finish_reason(r: dict[str, Any], max_tokens: int) -> str:
        return "length" if r["completion_tokens"] >= max_tokens else "stop"

    @app.post("/v1/completions")
    def v1_completions(req: CompletionRequest) -> dict[str, Any]:
        r, p, t0, usage = generate_for(lambda _: req.prompt, req.max_tokens)
        return {
            "id": f"cmpl-{int(t0 * 1e6):x}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": f"{p.version.name}@v{p.version.version}",
            "choices": [{"index": 0, "text": r["text"], "finish_reason": finish_reason(r, req.max_tokens)}],
            "usage": usage,
            "latency_ms": round(1000 * (time.perf_counter() - t0), 1),
        }

    @app.post("/v1/chat/completions")
    def v1_chat_completions(req: ChatCompletionRequest) -> dict[str, Any]:
        messages = [m.model_dump() for m in req.messages]
        r, p, t0, usage = generate_for(lambda p: conversation_input(p, messages), req.max_tokens)
        message = {"role": "assistant", "content": r["text"]}
        return {
            "id": f"chatcmpl-{int(t0 * 1e6):x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{p.version.name}@v{p.version.version}",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(r, req.max_tokens)}],
            "usage": usage,
            "latency_ms": round(1000 * (time.perf_counter() - t0), 1),
        }


def serve(
    registry_root: str | Path, ref: str, *, host: str = "127.0.0.1", port: int = 8000, watch_seconds: float = 5.0
) -> None:
    import uvicorn

    app = create_app(registry_root, ref, watch_seconds=watch_seconds)
    print(
        f"serving {app.state.slot.version_ref} ({app.state.slot.ref}) on http://{host}:{port}  "
        f"(GET /health, POST /v1/predict, POST /v1/completions, POST /admin/reload; Ctrl-C stops)",
        flush=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="warning")
