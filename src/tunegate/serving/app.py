"""``tunegate serve``: registered models over HTTP (FastAPI + uvicorn, loopback by default).

* ``GET /health``: the served models and what they are (the first ``--model``'s fields at the top).
* ``GET /v1/models``: the served models, OpenAI-style (``id`` is what a request's ``model`` names).
* ``POST /v1/predict``: classification (label + per-label probabilities) or regression
  (the number); ``{"model": ..., "text": ...}`` or ``{"texts": [...]}``.
* ``POST /v1/completions`` and ``POST /v1/chat/completions``: OpenAI-compatible generation,
  streaming included (``openai_api``).
* ``POST /admin/reload``: resolve the references again (``name@production``) and switch to
  the versions they point at now. A watcher thread does the same when the registry's
  aliases change (``--watch-seconds``).

Versions of one base model share one copy of its weights: LoRA versions are adapters on it,
applied per request, and the probe and prompt versions read the base itself (``adapters``).
A reload loads the new version (an adapter onto the shared base) while the current one keeps
answering, then swaps one reference: requests in flight finish on the version they started
with, none is dropped. Inference runs on one thread, first come first served; predict
requests that arrive while it is busy are batched together, across versions of one base
(``batching``). Errors are OpenAI's JSON shape (``{"error": {"message", "type", "param",
"code"}}``): 4xx for bad requests, a 500 says "internal error" without a traceback (the
server log has it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunegate.problems import task_type
from tunegate.serving import openai_api
from tunegate.serving.pool import ApiError, ModelPool

log = logging.getLogger(__name__)

MAX_TEXTS = 64
MAX_CHARS = openai_api.MAX_CHARS
ENDPOINTS = (
    "GET /health, GET /v1/models, POST /v1/predict, POST /v1/completions, POST /v1/chat/completions, POST /admin/reload"
)


class PredictRequest(BaseModel):
    """Body of POST /v1/predict: one text or a list of texts, for the named model (none: the first --model)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(default=None, description="a served model (GET /v1/models)")
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


def _watch(pool: ModelPool, every: float, stop: threading.Event) -> None:
    """Reload a slot when its alias points elsewhere (checked every ``every`` seconds)."""
    while not stop.wait(every):
        try:
            for slot in pool.moved():
                pool.reload(slot)
        except Exception as exc:  # noqa: BLE001 - keep watching; the current versions keep serving
            log.warning("alias watch: %s", exc)


def _error(status: int, code: str, message: str, param: str | None = None, details: Any = None) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body: dict[str, Any] = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    if details is not None:
        body["error"]["details"] = details
    return JSONResponse(status_code=status, content=body)


def create_app(registry_root: str | Path, refs: str | list[str], *, watch_seconds: float = 0.0) -> FastAPI:
    """The serving app for registered versions (``refs``: NAME@alias or NAME@version, one or several): errors in
    OpenAI's JSON shape, the prediction and OpenAI endpoints, and a reload that follows alias moves."""
    pool = ModelPool(Path(registry_root), [refs] if isinstance(refs, str) else list(refs))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        if watch_seconds > 0:
            threading.Thread(target=_watch, args=(pool, watch_seconds, stop), daemon=True, name="alias-watch").start()
        yield
        stop.set()

    served = ", ".join(pool.slots)
    app = FastAPI(
        title="tunegate serve", version="1", description=f"Serving {served} from {registry_root}", lifespan=lifespan
    )
    app.state.pool = pool
    _add_error_handlers(app)
    _add_predict_routes(app, pool)
    openai_api.add_routes(app, pool)

    @app.post("/admin/reload")
    def admin_reload(model: str | None = None, force: bool = False) -> dict[str, Any]:
        """Reload the named model (``?model=``), or every served one; a single model's result is returned as is."""
        if model or len(pool.slots) == 1:
            return pool.reload(pool.find(model), force=force)
        results = {s.ref: pool.reload(s, force=force) for s in list(pool.slots.values())}
        return {"reloaded": any(r["reloaded"] for r in results.values()), "models": results}

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in OpenAI's shape: {"error": {"message", "type", "param", "code"}}, never a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return _error(exc.status, exc.code, exc.message, exc.param)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        details = [
            {"where": ".".join(str(x) for x in e.get("loc", ())[1:]) or "body", "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        msg = "; ".join(f"{d['where']}: {d['problem']}" for d in details) or "invalid request"
        return _error(400, "invalid_request", msg, details[0]["where"] if details else None, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        hint = f" (endpoints: {ENDPOINTS})" if exc.status_code in (404, 405) else ""
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, f"{exc.detail}{hint}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return _error(500, "internal_error", f"internal error ({type(exc).__name__}); the server log has the details")


def _add_predict_routes(app: FastAPI, pool: ModelPool) -> None:
    """GET /health and POST /v1/predict (labels or numbers)."""

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            **pool.default.describe(),
            "models": [s.describe() for s in pool.slots.values()],
            "predict_batches": pool.inference.batches,
            "mixed_batches": pool.inference.mixed_batches,
            "memory": pool.memory(),
        }

    @app.post("/v1/predict")
    def v1_predict(req: PredictRequest) -> dict[str, Any]:
        slot = pool.find(req.model)
        p = slot.predictor
        if task_type(p.meta["task"]).generates:
            raise ApiError(
                400, "wrong_endpoint", f"{slot.version_ref} is a generation model; use POST /v1/completions", "model"
            )
        texts = [req.text] if req.text is not None else list(req.texts or [])
        t0 = time.perf_counter()
        results = pool.inference.predict(p, texts)
        slot.requests += 1
        out = [{k: v for k, v in r.items() if k != "input"} for r in results]
        return {
            "model": f"{p.version.name}@v{p.version.version}",
            "ref": slot.ref,
            "predictions": out,
            "latency_ms": round(1000 * (time.perf_counter() - t0), 1),
        }


def serve(
    registry_root: str | Path,
    refs: str | list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    watch_seconds: float = 5.0,
) -> None:
    import uvicorn

    app = create_app(registry_root, refs, watch_seconds=watch_seconds)
    pool = app.state.pool
    served = ", ".join(f"{s.ref} ({s.version_ref})" for s in pool.slots.values())
    print(f"serving {served} on http://{host}:{port}  ({ENDPOINTS}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
