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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunegate.config.serve import ServeConfig
from tunegate.errors import TunegateError
from tunegate.problems import task_type
from tunegate.registry import PRODUCTION
from tunegate.serving import openai_api
from tunegate.serving.live import Traffic, parse_canary, serve_settings
from tunegate.serving.pool import ApiError, ModelPool, normalized
from tunegate.traffic.log import TRAFFIC

log = logging.getLogger(__name__)

MAX_TEXTS = 64
MAX_CHARS = openai_api.MAX_CHARS
ENDPOINTS = (
    "GET /health, GET /v1/models, POST /v1/predict, POST /v1/completions, POST /v1/chat/completions, "
    "POST /v1/feedback, POST /admin/reload"
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


class FeedbackRequest(BaseModel):
    """Body of POST /v1/feedback: a logged request's id (from its answer) and its true label or reference."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200)
    label: str | None = Field(default=None, max_length=MAX_CHARS)
    reference: str | float | None = None

    @model_validator(mode="after")
    def _one_truth(self):
        if (self.label is None) == (self.reference is None):
            raise ValueError('give exactly one of "label" (classification) or "reference" (the expected output)')
        return self


@dataclass
class _LivePlan:
    shadows: dict[str, str]
    canaries: dict[str, tuple[str, float]]
    extra: list[str]  # challenger references to load beside the --model ones


def _live_plan(refs: list[str], shadows: list[str], canaries: list[str]) -> _LivePlan:
    """Which served slot each --shadow/--canary challenges: NAME's production slot (served with --model)."""
    served = {normalized(r) for r in refs}
    plan = _LivePlan({}, {}, [])
    pairs = [(s, "shadow", None) for s in shadows]
    for c in canaries:
        ref, share = parse_canary(c)
        pairs.append((ref, "canary", share))
    for ref, kind, share in pairs:
        name = ref.partition("@")[0]
        champion = f"{name}@{PRODUCTION}"
        if champion not in served:
            raise TunegateError(
                f"--{kind} {ref}: it challenges {champion}, which is not served; add --model {champion}"
            )
        if normalized(ref) == champion:
            raise TunegateError(f"--{kind} {ref}: that is the champion itself; name another version, e.g. {name}@4")
        if kind == "shadow":
            plan.shadows[champion] = normalized(ref)
        else:
            plan.canaries[champion] = (normalized(ref), share)
        plan.extra.append(ref)
    return plan


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


def create_app(
    registry_root: str | Path,
    refs: str | list[str],
    *,
    watch_seconds: float = 0.0,
    shadows: list[str] = (),
    canaries: list[str] = (),
    config: str | Path | None = None,
    serve_config: ServeConfig | None = None,
    seed: int | None = None,
) -> FastAPI:
    """The serving app for registered versions (``refs``: NAME@alias or NAME@version, one or several): errors in
    OpenAI's JSON shape, the prediction and OpenAI endpoints, a reload that follows alias moves, and live traffic
    (``shadows``: NAME@REF scored beside NAME's production slot; ``canaries``: NAME@REF:SHARE answering that share
    of it; the request log, feedback and ``serve.rollback_if`` from ``serve_config``, ``config``'s ``serve:`` or
    the first model's recorded config)."""
    refs = [refs] if isinstance(refs, str) else list(refs)
    plan = _live_plan(refs, list(shadows), list(canaries))
    served = list(dict.fromkeys(normalized(r) for r in refs + plan.extra))  # a challenger may also be a --model
    pool = ModelPool(Path(registry_root), served)
    settings = serve_config or serve_settings(Path(registry_root), refs[0], Path(config) if config else None)
    traffic = Traffic(pool, settings, shadows=plan.shadows, canaries=plan.canaries, seed=seed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        stop = threading.Event()
        if watch_seconds > 0:
            threading.Thread(target=_watch, args=(pool, watch_seconds, stop), daemon=True, name="alias-watch").start()
        yield
        stop.set()

    app = FastAPI(
        title="tunegate serve", version="1", description=f"Serving {', '.join(pool.slots)} from {registry_root}",
        lifespan=lifespan,
    )  # fmt: skip
    app.state.pool, app.state.traffic = pool, traffic
    _add_error_handlers(app)
    _add_predict_routes(app, pool, traffic)
    openai_api.add_routes(app, pool, traffic)

    @app.post("/v1/feedback")
    def v1_feedback(req: FeedbackRequest) -> dict[str, Any]:
        """The truth for a logged request, when it becomes known: ``{id, label}`` or ``{id, reference}``."""
        return traffic.feedback(req.id, label=req.label, reference=req.reference)

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


def _add_predict_routes(app: FastAPI, pool: ModelPool, traffic: Traffic) -> None:
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
            "traffic": traffic.describe(),
        }

    @app.post("/v1/predict")
    def v1_predict(req: PredictRequest) -> dict[str, Any]:
        slot = pool.find(req.model)
        answered, route = traffic.route(slot)
        p = answered.predictor
        if task_type(p.meta["task"]).generates:
            raise ApiError(
                400, "wrong_endpoint", f"{slot.version_ref} is a generation model; use POST /v1/completions", "model"
            )
        texts = [req.text] if req.text is not None else list(req.texts or [])
        t0 = time.perf_counter()
        answer = pool.inference.predict_async(p, texts)
        shadow = traffic.shadow_of(slot, route)
        shadowed = pool.inference.predict_async(shadow.predictor, texts) if shadow else None
        results = answer.result()
        ms = round(1000 * (time.perf_counter() - t0), 1)
        answered.requests += 1
        ids = [traffic.new_id("pred") for _ in texts]

        def record(future=None) -> None:
            extra = None
            if future is not None:
                try:
                    extra = future.result()
                except Exception as exc:  # noqa: BLE001 - the shadow failing never touches the answer
                    log.warning("shadow %s failed: %s", shadow.ref, exc)
            shadow_ms = round(1000 * (time.perf_counter() - t0), 1)
            for i, text in enumerate(texts):
                traffic.record(
                    rid=ids[i], requested=slot, answered=answered, route=route, endpoint="predict", text=text,
                    result=results[i], latency_ms=ms,
                    shadow=traffic.shadow_record(shadow, extra[i], shadow_ms) if extra else None,
                )  # fmt: skip

        if shadowed is not None:
            shadowed.add_done_callback(record)
        else:
            record()
        out = [{"id": rid, **{k: v for k, v in r.items() if k != "input"}} for rid, r in zip(ids, results)]
        return {"model": answered.version_ref, "ref": slot.ref, "route": route, "predictions": out, "latency_ms": ms}


def serve(
    registry_root: str | Path,
    refs: str | list[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    watch_seconds: float = 5.0,
    **live: Any,
) -> None:
    import uvicorn

    app = create_app(registry_root, refs, watch_seconds=watch_seconds, **live)
    pool, traffic = app.state.pool, app.state.traffic
    served = ", ".join(f"{s.ref} ({s.version_ref})" for s in pool.slots.values())
    print(f"serving {served} on http://{host}:{port}  ({ENDPOINTS}; Ctrl-C stops)", flush=True)
    for champion, challenger in traffic.shadows.items():
        print(f"  shadow: {challenger} scores every request to {champion} (logged, never returned)", flush=True)
    for champion, (challenger, share) in traffic.canaries.items():
        print(f"  canary: {challenger} answers {share:.0%} of the requests to {champion}", flush=True)
    if traffic.serve.log:
        where = traffic.serve.log_dir or Path(registry_root) / TRAFFIC
        inputs = "with" if traffic.serve.log_inputs else "without"
        print(f"  request log: {where}/<model>/requests.jsonl ({inputs} the input text)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
